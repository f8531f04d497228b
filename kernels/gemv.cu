// y = A x, A is M x N row-major (float). One warp per row: lanes stride over the row
// (coalesced 128 B per warp load), shuffle reduction, lane 0 writes y[row].

extern "C" __global__ void sgemv_warp(const float* A, const float* x, float* y, int M, int N)
{
    int warps_per_block = blockDim.x >> 5;
    int row = blockIdx.x * warps_per_block + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= M) {
        return;
    }
    const float* a = A + (long long)row * N;
    float acc = 0.f;
    for (int k = lane; k < N; k += 32) {
        acc += a[k] * x[k];
    }
    for (int off = 16; off > 0; off >>= 1) {
        acc += __shfl_down_sync(0xffffffffu, acc, off);
    }
    if (lane == 0) {
        y[row] = acc;
    }
}
