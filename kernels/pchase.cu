// Pointer chase: one thread follows a random cyclic permutation of cache lines.
// next[i] holds the element index of the next line in the cycle (one live word per 128 B line).
// Timed with clock64() around the dependent loads, so the result is SM cycles per load.
// pchase_ca uses the default global load (cached in L1 on Volta and later);
// pchase_cg loads with __ldcg (cache global: L2 only), to read L2 and DRAM without L1.

extern "C" __global__ void pchase_ca(unsigned int* next, unsigned int start, int steps,
                                     unsigned int* out_index, long long* out_cycles)
{
    unsigned int j = start;
    long long t0 = clock64();
#pragma unroll 8
    for (int i = 0; i < steps; ++i) {
        j = next[j];
    }
    long long t1 = clock64();
    out_index[0] = j;
    out_cycles[0] = t1 - t0;
}

extern "C" __global__ void pchase_cg(unsigned int* next, unsigned int start, int steps,
                                     unsigned int* out_index, long long* out_cycles)
{
    unsigned int j = start;
    long long t0 = clock64();
#pragma unroll 8
    for (int i = 0; i < steps; ++i) {
        j = __ldcg(next + j);
    }
    long long t1 = clock64();
    out_index[0] = j;
    out_cycles[0] = t1 - t0;
}

// Shared-memory pointer chase: the chain (a random cycle over n words, in `chain`) is copied into
// shared memory, then one thread follows it. Dynamic shared memory of n * 4 bytes.
extern "C" __global__ void pchase_shared(const unsigned int* chain, int n, int steps,
                                         unsigned int* out_index, long long* out_cycles)
{
    extern __shared__ unsigned int s_chain[];
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        s_chain[i] = chain[i];
    }
    __syncthreads();
    if (threadIdx.x != 0) {
        return;
    }
    unsigned int j = 0;
    long long t0 = clock64();
#pragma unroll 8
    for (int i = 0; i < steps; ++i) {
        j = s_chain[j];
    }
    long long t1 = clock64();
    out_index[0] = j;
    out_cycles[0] = t1 - t0;
}
