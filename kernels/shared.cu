// Shared-memory bandwidth and bank conflicts. Lane l of every warp reads word
// base = l * stride (mod 32 banks), then the same bank again at +32, +64, ... words, so each
// load instruction of the warp touches gcd(stride, 32) words per bank: that many "ways" of
// conflict. The loads go through a volatile pointer so none is hoisted out of the loop.
// Useful bytes per warp load: 32 lanes x 4 B. The block has SMEM_WORDS words of shared memory.

#define SMEM_WORDS 2048
#define LOADS_PER_ITER 8

extern "C" __global__ void smem_stride(int stride, int iters, float flag, float* out)
{
    __shared__ float s[SMEM_WORDS];
    for (int i = threadIdx.x; i < SMEM_WORDS; i += blockDim.x) {
        s[i] = (float)(i % 97) * 0.5f + 1.0f;
    }
    __syncthreads();
    volatile float* vs = s;
    int lane = threadIdx.x & 31;
    int base = (lane * stride) & (SMEM_WORDS - 1 - 32 * (LOADS_PER_ITER - 1));
    // keep bank = (lane * stride) mod 32 while bounding the index
    base = (base & ~31) | ((lane * stride) & 31);
    float acc = 0.f;
    for (int it = 0; it < iters; ++it) {
#pragma unroll
        for (int k = 0; k < LOADS_PER_ITER; ++k) {
            acc += vs[base + 32 * k];
        }
    }
    if (acc == flag) {
        out[0] = acc;
    }
}
