// Tensor-core GEMM of the Ampere kind (sm_80 and later), C = A * B, row-major: A is M x K,
// B is K x N, C is M x N, as kernels/sgemm.cu. Inputs fp16 (mma_gemm_fp16) or bf16
// (mma_gemm_bf16) as 16-bit words, fp32 accumulators, C written in the input type (round to
// nearest even), as cuBLAS's cublasGemmEx with CUBLAS_COMPUTE_32F does for these types; or
// fp32 inputs on the tf32 path (mma_gemm_tf32: each operand rounded to tf32 with
// cvt.rna.tf32.f32, mma.sync.m16n8k8, C written in fp32), as cublasGemmEx with
// CUBLAS_COMPUTE_32F_FAST_TF32 does.
//
// The multistage mainloop of CUTLASS's mma_multistage.h, written out with inline PTX (no
// headers, so NVRTC compiles it as CuPy's RawModule does):
//   - a BM x BN block tile walks K in steps of BK elements through STAGES shared-memory buffers;
//     every thread copies its 16-byte chunks of the tile STAGES - 1 ahead with cp.async
//     (cp.async.cg: global -> shared, bypassing the L1), spread over the first KSTEPS - 1
//     k steps of the current tile, one commit group per tile;
//   - before the last k step of a tile: cp.async.wait_group(STAGES - 2) and a block barrier,
//     so the next tile has landed and the buffer about to be refilled is no longer read;
//   - each of WARPS_M x WARPS_N warps computes a WM x WN warp tile: per k step of 16, it loads
//     its fragments with ldmatrix.x4 (A) and ldmatrix.x4.trans (B, which is K x N in shared
//     memory), double-buffered in registers (the next k step's while this one computes), and
//     issues (WM / 16) x (WN / 8) mma.sync.m16n8k16 with fp32 accumulators;
//   - shared memory holds A rows of BK elements and B rows of BN elements in 16-byte chunks,
//     chunk c of row r stored at chunk c ^ (r % 8): ldmatrix's eight row addresses and a warp's
//     cp.async stores then fall in distinct banks;
//   - the epilogue converts each accumulator pair to two 16-bit values and stores them, 4
//     bytes a lane, straight from the mma fragments.
// tf32 (32-bit elements): the same tile in bytes (BK / 2 = 32 elements a row, 128 bytes, so
// the same chunks, copies and shared memory), k steps of 8 (mma.sync.m16n8k8, KSTEPS the same).
// A's fragments still come with ldmatrix.x4: it moves 16-byte rows whatever their type, and a
// lane's 32-bit word (row l / 4, word l % 4) of each 8 x 4 matrix is the m16n8k8 tf32 A
// element (row g, column t) it needs. B's cannot: ldmatrix.trans transposes 16-bit elements,
// so each lane loads its two B elements (rows t and t + 4, column g) with ld.shared.b32, and B
// is swizzled by chunk c ^ 2 (r % 4), which puts those loads (four rows, eight columns) and the
// cp.async stores in distinct banks. Operands are rounded to tf32 (cvt.rna) as they go into
// the mma; the epilogue stores each accumulator pair as one 8-byte fp32 pair.
// Bounds: any M; N and K must be multiples of 8 (every 16-byte chunk of a row is then wholly in
// or out of the matrix, and rows start 16-byte aligned); the caller refuses other sizes. Chunks
// outside A or B are zero-filled (cp.async's src-size 0); C elements outside M x N are not
// written. Launch: grid (ceil(N / BN), ceil(M / BM)), THREADS threads, SMEM_BYTES of dynamic
// shared memory (over 48 KiB: the caller raises the function's limit), the same for every type.

#ifndef BM
#define BM 128
#endif
#ifndef BN
#define BN 128
#endif
#ifndef BK
#define BK 64
#endif
#ifndef WARPS_M
#define WARPS_M 2
#endif
#ifndef WARPS_N
#define WARPS_N 4
#endif
#ifndef STAGES
#define STAGES 3
#endif

#define THREADS (32 * WARPS_M * WARPS_N)
#define WM (BM / WARPS_M)
#define WN (BN / WARPS_N)
#define MI (WM / 16)            // mma tiles of a warp along M
#define NI (WN / 8)             // ... along N
#define KSTEPS (BK / 16)        // mma k steps per block tile (16 elements; 8 of tf32's BK / 2)
#define A_CHUNKS (BM * BK / 8)  // 16-byte chunks of one stage's A tile (any type: 128-byte rows)
#define B_CHUNKS (BK * BN / 8)
#define A_PER_THREAD (A_CHUNKS / THREADS)
#define COPIES ((A_CHUNKS + B_CHUNKS) / THREADS)  // cp.async per thread per tile
// copies issued at each of the first KSTEPS - 1 k steps (the last issues none)
#define COPIES_PER_STEP ((COPIES + KSTEPS - 2) / (KSTEPS - 1))
#define STAGE_ELEMS (BM * BK + BK * BN)  // in 16-bit words, whatever the type
#define SMEM_BYTES (STAGES * STAGE_ELEMS * 2)

static_assert(WM % 16 == 0 && WN % 16 == 0, "warp tiles must be multiples of 16 x 16");
static_assert(BK % 64 == 0 && BN % 64 == 0, "the swizzle needs rows of at least 8 chunks");
static_assert(KSTEPS >= 2, "BK must hold at least two k steps of 16");
static_assert(A_CHUNKS % THREADS == 0 && B_CHUNKS % THREADS == 0,
              "every thread copies whole chunks of A and of B");
static_assert(STAGES >= 2, "at least two stages");

__device__ __forceinline__ unsigned smem_addr(const void* p)
{
    return static_cast<unsigned>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void cp_async16(unsigned dst, const void* src, bool valid)
{
    int src_bytes = valid ? 16 : 0;  // 0: the 16 bytes are zero-filled, nothing is read
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
                 "r"(src_bytes));
}

__device__ __forceinline__ void cp_async_commit()
{
    asm volatile("cp.async.commit_group;\n" ::);
}

__device__ __forceinline__ void cp_async_wait_pending()
{
    asm volatile("cp.async.wait_group %0;\n" ::"n"(STAGES - 2));
}

__device__ __forceinline__ void ldmatrix_x4(unsigned (&r)[4], unsigned addr)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

__device__ __forceinline__ void ldmatrix_x4_trans(unsigned (&r)[4], unsigned addr)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

template <bool BF16>
__device__ __forceinline__ void mma16816(float (&d)[4], const unsigned (&a)[4], unsigned b0,
                                         unsigned b1)
{
    if (BF16) {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
            "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    } else {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, "
            "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
}

// A (16 x 8, row): a0 (row g, column t), a1 (g + 8, t), a2 (g, t + 4), a3 (g + 8, t + 4);
// B (8 x 8, column): b0 (row t, column g), b1 (t + 4, g); g = lane / 4, t = lane % 4
__device__ __forceinline__ void mma1688_tf32(float (&d)[4], const unsigned (&a)[4], unsigned b0,
                                             unsigned b1)
{
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, "
        "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// fp32 bits rounded to tf32 (nearest, ties away from zero), as the mma reads them
__device__ __forceinline__ unsigned to_tf32(unsigned x)
{
    unsigned r;
    asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(__uint_as_float(x)));
    return r;
}

template <bool BF16>
__device__ __forceinline__ unsigned pack2(float lo, float hi)
{
    unsigned r;
    if (BF16) {
        asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
    } else {
        asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
    }
    return r;
}

// 16-bit-word offset of chunk `c` of row `r` (rows of `chunks` 16-byte chunks) in a swizzled
// tile: chunk c ^ (r % 8)
__device__ __forceinline__ int swz(int r, int c, int chunks)
{
    return (r * chunks + (c ^ (r & 7))) * 8;
}

// ... in tf32's B tile: chunk c ^ 2 (r % 4). A warp's B fragment loads read rows t and t + 4
// (t = 0..3) at columns g = 0..7 of an 8-column group (two chunks, c and c + 1, c even): the
// four rows' chunk pairs land on eight distinct chunks of 8, 32 distinct banks. (c ^ (r % 8)
// would put rows 0 and 1 on the same pair.)
__device__ __forceinline__ int swz_b32(int r, int c, int chunks)
{
    return (r * chunks + (c ^ ((r & 3) << 1))) * 8;
}

// The element types: 16-bit words for fp16 and bf16, float for tf32
enum { DT_F16, DT_BF16, DT_TF32 };
template <int DT>
struct Elem {
    typedef unsigned short T;
};
template <>
struct Elem<DT_TF32> {
    typedef float T;
};

// A thread's copies: chunk column and first row of its A and B chunks (a pass of THREADS
// chunks covers A_PASS_ROWS rows of A, b_pass_rows<T>() of B; a whole number of swizzle
// periods, so a thread's swizzle phase is the same in every pass and its shared-memory offsets
// step by whole passes)
#define A_PASS_ROWS (THREADS / (BK / 8))
template <typename T>
__device__ __host__ constexpr int b_pass_rows()
{
    return THREADS / (BN * (int)sizeof(T) / 16);
}
static_assert(A_PASS_ROWS % 8 == 0 && THREADS / (BN / 8) % 8 == 0,
              "a pass of copies must cover a multiple of 8 rows");
// (tf32's B swizzle repeats every 4 rows: its passes need a multiple of 4, THREADS / (BN / 4))
static_assert(THREADS / (BN / 4) % 4 == 0, "a pass of tf32 B copies must cover 4k rows");

template <typename T>
struct Copier {
    const T* a;               // this thread's first A chunk of the current tile
    const T* b;
    int a_row, a_k;           // its row in the block's A strip (first pass), column of A
    int b_k, b_col;           // its row of the B tile (first pass), column of B
    unsigned a_sm, b_sm;      // byte offsets of its first chunks in a stage buffer
};

// copy `i` (0 .. COPIES - 1; A's first) of tile `kt` into the stage buffer at `stage`
template <typename T>
__device__ __forceinline__ void tile_copy(const Copier<T>& cp, const T* A, const T* B,
                                          int rows_left, int N, int K, int kt, unsigned stage,
                                          int i)
{
    constexpr int BKE = BK * 2 / (int)sizeof(T);  // K elements of a tile
    constexpr int B_PASS_ROWS = b_pass_rows<T>();
    if (i < A_PER_THREAD) {
        bool ok = cp.a_row + i * A_PASS_ROWS < rows_left && kt * BKE + cp.a_k < K;
        const T* src = ok ? cp.a + (long long)i * A_PASS_ROWS * K : A;
        cp_async16(stage + cp.a_sm + i * THREADS * 16, src, ok);
    } else {
        int j = i - A_PER_THREAD;
        bool ok = kt * BKE + cp.b_k + j * B_PASS_ROWS < K && cp.b_col < N;
        const T* src = ok ? cp.b + (long long)j * B_PASS_ROWS * N : B;
        cp_async16(stage + BM * BK * 2 + cp.b_sm + j * THREADS * 16, src, ok);
    }
}

template <int DT>
__device__ __forceinline__ void mma_gemm_body(const typename Elem<DT>::T* __restrict__ A,
                                              const typename Elem<DT>::T* __restrict__ B,
                                              typename Elem<DT>::T* __restrict__ C, int M, int N,
                                              int K)
{
    typedef typename Elem<DT>::T T;
    constexpr bool BF16 = DT == DT_BF16;
    constexpr bool TF32 = DT == DT_TF32;
    constexpr int CE = 16 / (int)sizeof(T);       // elements of a 16-byte chunk
    constexpr int BKE = BK * 2 / (int)sizeof(T);  // K elements of a tile (128-byte rows)
    constexpr int BNC = BN / CE;                  // chunks of a B row
    extern __shared__ __align__(128) unsigned short smem[];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int wy = warp / WARPS_N, wx = warp % WARPS_N;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    const int ktiles = (K + BKE - 1) / BKE;

    float acc[MI][NI][4];
#pragma unroll
    for (int i = 0; i < MI; ++i) {
#pragma unroll
        for (int j = 0; j < NI; ++j) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                acc[i][j][e] = 0.f;
            }
        }
    }

    Copier<T> cp;
    {
        const int tid = threadIdx.x;
        const int ac = tid % (BK / 8), ar = tid / (BK / 8);
        const int bc = tid % BNC, br = tid / BNC;
        cp.a_row = ar;
        cp.a_k = ac * CE;
        cp.b_k = br;
        cp.b_col = n0 + bc * CE;
        cp.a = A + (long long)(m0 + ar) * K + ac * CE;
        cp.b = B + (long long)br * N + n0 + bc * CE;
        cp.a_sm = swz(ar, ac, BK / 8) * 2;
        cp.b_sm = (TF32 ? swz_b32(br, bc, BNC) : swz(br, bc, BNC)) * 2;
    }
    const unsigned smem0 = smem_addr(smem);
    const int rows_left = M - m0;

    // prologue: tiles 0 .. STAGES - 2, one commit group each
#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
        if (s < ktiles) {
#pragma unroll
            for (int i = 0; i < COPIES; ++i) {
                tile_copy(cp, A, B, rows_left, N, K, s, smem0 + s * STAGE_ELEMS * 2, i);
            }
        }
        cp_async_commit();
        cp.a += BKE;
        cp.b += (long long)BKE * N;
    }
    cp_async_wait_pending();
    __syncthreads();

    // ldmatrix addresses: lane l names row (l % 16) and 16-byte column (l / 16) of a 16-row
    // piece (A: rows m, columns k; B: rows k, columns n, transposed on load). tf32: A's x4 is
    // the same (a 16 x 8 piece); B's elements come one by one, rows t and t + 4, column g.
    const int lrow = lane % 16, lcol = lane / 16;
    const int fg = lane / 4, ft = lane % 4;
    unsigned af[2][MI][4];
    unsigned bfr[2][NI / 2][4];
    auto load_frags = [&](int stage, int kk, unsigned (&a)[MI][4], unsigned (&b)[NI / 2][4]) {
        const unsigned short* sa = smem + stage * STAGE_ELEMS;
        const unsigned short* sb = sa + BM * BK;
#pragma unroll
        for (int i = 0; i < MI; ++i) {
            int r = wy * WM + i * 16 + lrow;
            ldmatrix_x4(a[i], smem_addr(sa + swz(r, kk * 2 + lcol, BK / 8)));
        }
        if constexpr (TF32) {
            const float* sbf = reinterpret_cast<const float*>(sb);
#pragma unroll
            for (int j = 0; j < NI; ++j) {
                const int n = wx * WN + j * 8 + fg;
#pragma unroll
                for (int h = 0; h < 2; ++h) {
                    const int r = kk * 8 + ft + 4 * h;
                    b[j / 2][(j % 2) * 2 + h] =
                        __float_as_uint(sbf[swz_b32(r, n / 4, BNC) / 2 + n % 4]);
                }
            }
        } else {
#pragma unroll
            for (int j = 0; j < NI / 2; ++j) {
                int r = kk * 16 + lrow;
                int c = (wx * WN + j * 16) / 8 + lcol;
                ldmatrix_x4_trans(b[j], smem_addr(sb + swz(r, c, BN / 8)));
            }
        }
    };

    load_frags(0, 0, af[0], bfr[0]);
    int read_stage = 0;
    int write_stage = STAGES - 1;
#pragma unroll 1
    for (int kt = 0; kt < ktiles; ++kt) {
        const bool more = kt + STAGES - 1 < ktiles;
        const unsigned wst = smem0 + write_stage * STAGE_ELEMS * 2;
#pragma unroll
        for (int kk = 0; kk < KSTEPS; ++kk) {
            if (kk == KSTEPS - 1) {
                cp_async_commit();
                cp_async_wait_pending();
                __syncthreads();
                read_stage = read_stage + 1 == STAGES ? 0 : read_stage + 1;
                write_stage = write_stage + 1 == STAGES ? 0 : write_stage + 1;
            }
            const int nk = (kk + 1) % KSTEPS;
            load_frags(read_stage, nk, af[nk & 1], bfr[nk & 1]);
            if (kk < KSTEPS - 1 && more) {
#pragma unroll
                for (int i = kk * COPIES_PER_STEP; i < (kk + 1) * COPIES_PER_STEP; ++i) {
                    if (i < COPIES) {
                        tile_copy(cp, A, B, rows_left, N, K, kt + STAGES - 1, wst, i);
                    }
                }
            }
            if (kk == KSTEPS - 2) {  // the next tile's chunks
                cp.a += BKE;
                cp.b += (long long)BKE * N;
            }
            if constexpr (TF32) {  // this k step's fragments, loaded a k step ago, to tf32
#pragma unroll
                for (int i = 0; i < MI; ++i) {
#pragma unroll
                    for (int e = 0; e < 4; ++e) {
                        af[kk & 1][i][e] = to_tf32(af[kk & 1][i][e]);
                    }
                }
#pragma unroll
                for (int j = 0; j < NI / 2; ++j) {
#pragma unroll
                    for (int e = 0; e < 4; ++e) {
                        bfr[kk & 1][j][e] = to_tf32(bfr[kk & 1][j][e]);
                    }
                }
            }
#pragma unroll
            for (int i = 0; i < MI; ++i) {
#pragma unroll
                for (int j = 0; j < NI; ++j) {
                    const unsigned(&b)[4] = bfr[kk & 1][j / 2];
                    if constexpr (TF32) {
                        mma1688_tf32(acc[i][j], af[kk & 1][i], b[(j % 2) * 2],
                                     b[(j % 2) * 2 + 1]);
                    } else {
                        mma16816<BF16>(acc[i][j], af[kk & 1][i], b[(j % 2) * 2],
                                       b[(j % 2) * 2 + 1]);
                    }
                }
            }
        }
    }
    asm volatile("cp.async.wait_all;\n" ::);

    // epilogue: accumulator d0,d1 at (row g, columns 2t, 2t + 1), d2,d3 at row g + 8
    const int g = lane / 4, t = lane % 4;
#pragma unroll
    for (int i = 0; i < MI; ++i) {
#pragma unroll
        for (int j = 0; j < NI; ++j) {
            int col = n0 + wx * WN + j * 8 + 2 * t;
            int row = m0 + wy * WM + i * 16 + g;
            if (col < N) {  // N is even: col + 1 < N too
                if constexpr (TF32) {
                    if (row < M) {
                        float2 v;
                        v.x = acc[i][j][0];
                        v.y = acc[i][j][1];
                        *reinterpret_cast<float2*>(C + (long long)row * N + col) = v;
                    }
                    if (row + 8 < M) {
                        float2 v;
                        v.x = acc[i][j][2];
                        v.y = acc[i][j][3];
                        *reinterpret_cast<float2*>(C + (long long)(row + 8) * N + col) = v;
                    }
                } else {
                    if (row < M) {
                        *reinterpret_cast<unsigned*>(C + (long long)row * N + col) =
                            pack2<BF16>(acc[i][j][0], acc[i][j][1]);
                    }
                    if (row + 8 < M) {
                        *reinterpret_cast<unsigned*>(C + (long long)(row + 8) * N + col) =
                            pack2<BF16>(acc[i][j][2], acc[i][j][3]);
                    }
                }
            }
        }
    }
}

extern "C" __global__ __launch_bounds__(THREADS) void mma_gemm_fp16(
    const unsigned short* A, const unsigned short* B, unsigned short* C, int M, int N, int K)
{
    mma_gemm_body<DT_F16>(A, B, C, M, N, K);
}

extern "C" __global__ __launch_bounds__(THREADS) void mma_gemm_bf16(
    const unsigned short* A, const unsigned short* B, unsigned short* C, int M, int N, int K)
{
    mma_gemm_body<DT_BF16>(A, B, C, M, N, K);
}

extern "C" __global__ __launch_bounds__(THREADS) void mma_gemm_tf32(
    const float* A, const float* B, float* C, int M, int N, int K)
{
    mma_gemm_body<DT_TF32>(A, B, C, M, N, K);
}
