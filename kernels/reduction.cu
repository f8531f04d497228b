// Sum reduction of n floats: grid-stride accumulation in registers (float4 loads), warp
// shuffle tree, one shared-memory slot per warp, one atomicAdd per block. out must be zeroed.

extern "C" __global__ void reduce_sum(const float4* a, unsigned long long n4, float* out)
{
    __shared__ float warp_sums[32];
    float acc = 0.f;
    unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n4;
         i += stride) {
        float4 v = a[i];
        acc += (v.x + v.y) + (v.z + v.w);
    }
    for (int off = 16; off > 0; off >>= 1) {
        acc += __shfl_down_sync(0xffffffffu, acc, off);
    }
    int lane = threadIdx.x & 31;
    int warp = threadIdx.x >> 5;
    if (lane == 0) {
        warp_sums[warp] = acc;
    }
    __syncthreads();
    if (warp == 0) {
        int nwarps = (blockDim.x + 31) >> 5;
        acc = lane < nwarps ? warp_sums[lane] : 0.f;
        for (int off = 16; off > 0; off >>= 1) {
            acc += __shfl_down_sync(0xffffffffu, acc, off);
        }
        if (lane == 0) {
            atomicAdd(out, acc);
        }
    }
}
