// Tensor-core GEMM of the Ampere kind (sm_80 and later), C = A * B, row-major: A is M x K,
// B is K x N, C is M x N, as kernels/sgemm.cu. Inputs fp16 (mma_gemm_fp16) or bf16
// (mma_gemm_bf16) as 16-bit words, fp32 accumulators, C written in the input type (round to
// nearest even), as cuBLAS's cublasGemmEx with CUBLAS_COMPUTE_32F does for these types.
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
// Bounds: any M; N and K must be multiples of 8 (every 16-byte chunk of a row is then wholly in
// or out of the matrix, and rows start 16-byte aligned); the caller refuses other sizes. Chunks
// outside A or B are zero-filled (cp.async's src-size 0); C elements outside M x N are not
// written. Launch: grid (ceil(N / BN), ceil(M / BM)), THREADS threads, SMEM_BYTES of dynamic
// shared memory (over 48 KiB: the caller raises the function's limit).

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
#define KSTEPS (BK / 16)        // mma k steps per block tile
#define A_CHUNKS (BM * BK / 8)  // 16-byte chunks of one stage's A tile
#define B_CHUNKS (BK * BN / 8)
#define A_PER_THREAD (A_CHUNKS / THREADS)
#define COPIES ((A_CHUNKS + B_CHUNKS) / THREADS)  // cp.async per thread per tile
// copies issued at each of the first KSTEPS - 1 k steps (the last issues none)
#define COPIES_PER_STEP ((COPIES + KSTEPS - 2) / (KSTEPS - 1))
#define STAGE_ELEMS (BM * BK + BK * BN)
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

// element offset of chunk `c` of row `r` (rows of `chunks` 16-byte chunks) in a swizzled tile
__device__ __forceinline__ int swz(int r, int c, int chunks)
{
    return (r * chunks + (c ^ (r & 7))) * 8;
}

// A thread's copies: chunk column and first row of its A and B chunks (a pass of THREADS
// chunks covers A_PASS_ROWS rows of A, B_PASS_ROWS of B; a multiple of 8 rows, so a thread's
// swizzle phase is the same in every pass and its shared-memory offsets step by whole passes)
#define A_PASS_ROWS (THREADS / (BK / 8))
#define B_PASS_ROWS (THREADS / (BN / 8))
static_assert(A_PASS_ROWS % 8 == 0 && B_PASS_ROWS % 8 == 0,
              "a pass of copies must cover a multiple of 8 rows");

struct Copier {
    const unsigned short* a;  // this thread's first A chunk of the current tile
    const unsigned short* b;
    int a_row, a_k;           // its row in the block's A strip (first pass), column of A
    int b_k, b_col;           // its row of the B tile (first pass), column of B
    unsigned a_sm, b_sm;      // byte offsets of its first chunks in a stage buffer
};

// copy `i` (0 .. COPIES - 1; A's first) of tile `kt` into the stage buffer at `stage`
__device__ __forceinline__ void tile_copy(const Copier& cp, const unsigned short* A,
                                          const unsigned short* B, int rows_left, int N, int K,
                                          int kt, unsigned stage, int i)
{
    if (i < A_PER_THREAD) {
        bool ok = cp.a_row + i * A_PASS_ROWS < rows_left && kt * BK + cp.a_k < K;
        const unsigned short* src = ok ? cp.a + (long long)i * A_PASS_ROWS * K : A;
        cp_async16(stage + cp.a_sm + i * THREADS * 16, src, ok);
    } else {
        int j = i - A_PER_THREAD;
        bool ok = kt * BK + cp.b_k + j * B_PASS_ROWS < K && cp.b_col < N;
        const unsigned short* src = ok ? cp.b + (long long)j * B_PASS_ROWS * N : B;
        cp_async16(stage + BM * BK * 2 + cp.b_sm + j * THREADS * 16, src, ok);
    }
}

template <bool BF16>
__device__ __forceinline__ void mma_gemm_body(const unsigned short* __restrict__ A,
                                              const unsigned short* __restrict__ B,
                                              unsigned short* __restrict__ C, int M, int N,
                                              int K)
{
    extern __shared__ __align__(128) unsigned short smem[];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int wy = warp / WARPS_N, wx = warp % WARPS_N;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    const int ktiles = (K + BK - 1) / BK;

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

    Copier cp;
    {
        const int tid = threadIdx.x;
        const int ac = tid % (BK / 8), ar = tid / (BK / 8);
        const int bc = tid % (BN / 8), br = tid / (BN / 8);
        cp.a_row = ar;
        cp.a_k = ac * 8;
        cp.b_k = br;
        cp.b_col = n0 + bc * 8;
        cp.a = A + (long long)(m0 + ar) * K + ac * 8;
        cp.b = B + (long long)br * N + n0 + bc * 8;
        cp.a_sm = swz(ar, ac, BK / 8) * 2;
        cp.b_sm = swz(br, bc, BN / 8) * 2;
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
        cp.a += BK;
        cp.b += (long long)BK * N;
    }
    cp_async_wait_pending();
    __syncthreads();

    // ldmatrix addresses: lane l names row (l % 16) and 8-element column (l / 16) of a 16 x 16
    // piece (A: rows m, columns k; B: rows k, columns n, transposed on load)
    const int lrow = lane % 16, lcol = lane / 16;
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
#pragma unroll
        for (int j = 0; j < NI / 2; ++j) {
            int r = kk * 16 + lrow;
            int c = (wx * WN + j * 16) / 8 + lcol;
            ldmatrix_x4_trans(b[j], smem_addr(sb + swz(r, c, BN / 8)));
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
                cp.a += BK;
                cp.b += (long long)BK * N;
            }
#pragma unroll
            for (int i = 0; i < MI; ++i) {
#pragma unroll
                for (int j = 0; j < NI; ++j) {
                    const unsigned(&b)[4] = bfr[kk & 1][j / 2];
                    mma16816<BF16>(acc[i][j], af[kk & 1][i], b[(j % 2) * 2], b[(j % 2) * 2 + 1]);
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

extern "C" __global__ __launch_bounds__(THREADS) void mma_gemm_fp16(
    const unsigned short* A, const unsigned short* B, unsigned short* C, int M, int N, int K)
{
    mma_gemm_body<false>(A, B, C, M, N, K);
}

extern "C" __global__ __launch_bounds__(THREADS) void mma_gemm_bf16(
    const unsigned short* A, const unsigned short* B, unsigned short* C, int M, int N, int K)
{
    mma_gemm_body<true>(A, B, C, M, N, K);
}
