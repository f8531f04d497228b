// Cache bandwidth: the same data read many times inside one launch, so that launch overhead
// vanishes and the hits come from the level under test.
//
// l2_read_passes: the grid reads the whole array (grid-stride, float4) `passes` times with
//                 __ldcg (L2 only, bypassing L1). A footprint below the L2 size hits in L2.
// l1_read_passes: each block reads its own `n4_per_block` float4 region `passes` times with
//                 default (L1-cached) loads. A region that fits in L1 hits in L1.
// `flag` is a value the sum never equals: it keeps the loads alive without a store.

extern "C" __global__ void l2_read_passes(const float4* a, unsigned long long n4, int passes,
                                          float flag, float* out)
{
    float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
    unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    unsigned long long first = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    for (int p = 0; p < passes; ++p) {
        for (unsigned long long i = first; i < n4; i += stride) {
            float4 v = __ldcg(a + i);
            acc.x += v.x; acc.y += v.y; acc.z += v.z; acc.w += v.w;
        }
    }
    float s = acc.x + acc.y + acc.z + acc.w;
    if (s == flag) {
        out[0] = s;
    }
}

extern "C" __global__ void l1_read_passes(const float4* a, int n4_per_block, int passes,
                                          float flag, float* out)
{
    float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
    const float4* base = a + (unsigned long long)blockIdx.x * n4_per_block;
    for (int p = 0; p < passes; ++p) {
        for (int i = threadIdx.x; i < n4_per_block; i += blockDim.x) {
            float4 v = base[i];
            acc.x += v.x; acc.y += v.y; acc.z += v.z; acc.w += v.w;
        }
    }
    float s = acc.x + acc.y + acc.z + acc.w;
    if (s == flag) {
        out[0] = s;
    }
}
