// Single-precision GEMM kernels, C = A * B, row-major, A is M x K, B is K x N, C is M x N.
// Any M, N, K (edges are guarded). Compile-time parameters come from -D options.
//
// sgemm_naive:    one thread per C element, operands straight from global memory.
// sgemm_tiled:    TILE x TILE threads per block; each block stages TILE x TILE tiles of A and B
//                 in shared memory (the textbook kernel; TILE = 8, 16 or 32).
// sgemm_regblock: BM x BN block tile, BK deep, each thread computes a TM x TN register tile
//                 (BM/TM * BN/TN threads per block); A and B tiles staged in shared memory.

#ifndef TILE
#define TILE 16
#endif
#ifndef BM
#define BM 64
#endif
#ifndef BN
#define BN 64
#endif
#ifndef BK
#define BK 16
#endif
#ifndef TM
#define TM 4
#endif
#ifndef TN
#define TN 4
#endif

extern "C" __global__ void sgemm_naive(const float* A, const float* B, float* C, int M, int N,
                                       int K)
{
    int col = blockIdx.x * blockDim.x + threadIdx.x;
    int row = blockIdx.y * blockDim.y + threadIdx.y;
    if (row >= M || col >= N) {
        return;
    }
    float acc = 0.f;
    for (int k = 0; k < K; ++k) {
        acc += A[(long long)row * K + k] * B[(long long)k * N + col];
    }
    C[(long long)row * N + col] = acc;
}

extern "C" __global__ void sgemm_tiled(const float* A, const float* B, float* C, int M, int N,
                                       int K)
{
    __shared__ float As[TILE][TILE];
    __shared__ float Bs[TILE][TILE];
    int tx = threadIdx.x;
    int ty = threadIdx.y;
    int row = blockIdx.y * TILE + ty;
    int col = blockIdx.x * TILE + tx;
    float acc = 0.f;
    for (int k0 = 0; k0 < K; k0 += TILE) {
        int ka = k0 + tx;
        int kb = k0 + ty;
        As[ty][tx] = (row < M && ka < K) ? A[(long long)row * K + ka] : 0.f;
        Bs[ty][tx] = (kb < K && col < N) ? B[(long long)kb * N + col] : 0.f;
        __syncthreads();
#pragma unroll
        for (int k = 0; k < TILE; ++k) {
            acc += As[ty][k] * Bs[k][tx];
        }
        __syncthreads();
    }
    if (row < M && col < N) {
        C[(long long)row * N + col] = acc;
    }
}

extern "C" __global__ void sgemm_regblock(const float* A, const float* B, float* C, int M, int N,
                                          int K)
{
    const int THREADS = (BM / TM) * (BN / TN);
    __shared__ float As[BK][BM];  // A tile stored transposed: As[k][m]
    __shared__ float Bs[BK][BN];
    int tid = threadIdx.x;
    int trow = tid / (BN / TN);   // this thread's row group inside the block tile
    int tcol = tid % (BN / TN);
    int row0 = blockIdx.y * BM;
    int col0 = blockIdx.x * BN;
    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; ++i) {
#pragma unroll
        for (int j = 0; j < TN; ++j) {
            acc[i][j] = 0.f;
        }
    }
    float a_frag[TM];
    float b_frag[TN];
    for (int k0 = 0; k0 < K; k0 += BK) {
        for (int e = tid; e < BM * BK; e += THREADS) {
            int m = e / BK;
            int k = e % BK;
            int gr = row0 + m;
            int gk = k0 + k;
            As[k][m] = (gr < M && gk < K) ? A[(long long)gr * K + gk] : 0.f;
        }
        for (int e = tid; e < BK * BN; e += THREADS) {
            int k = e / BN;
            int n = e % BN;
            int gk = k0 + k;
            int gc = col0 + n;
            Bs[k][n] = (gk < K && gc < N) ? B[(long long)gk * N + gc] : 0.f;
        }
        __syncthreads();
#pragma unroll
        for (int k = 0; k < BK; ++k) {
#pragma unroll
            for (int i = 0; i < TM; ++i) {
                a_frag[i] = As[k][trow * TM + i];
            }
#pragma unroll
            for (int j = 0; j < TN; ++j) {
                b_frag[j] = Bs[k][tcol * TN + j];
            }
#pragma unroll
            for (int i = 0; i < TM; ++i) {
#pragma unroll
                for (int j = 0; j < TN; ++j) {
                    acc[i][j] += a_frag[i] * b_frag[j];
                }
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < TM; ++i) {
        int gr = row0 + trow * TM + i;
#pragma unroll
        for (int j = 0; j < TN; ++j) {
            int gc = col0 + tcol * TN + j;
            if (gr < M && gc < N) {
                C[(long long)gr * N + gc] = acc[i][j];
            }
        }
    }
}
