// Matrix transpose, out = in^T, in is rows x cols row-major (float).
// transpose_naive: reads coalesced, writes strided (one 32 B sector per element written).
// transpose_tiled: 32 x 32 tile through shared memory padded to 33 columns (no bank conflicts);
//                  launched with 32 x 8 threads, each thread moves 4 elements.

#define TDIM 32
#define TROWS 8

extern "C" __global__ void transpose_naive(const float* in, float* out, int rows, int cols)
{
    int x = blockIdx.x * TDIM + threadIdx.x;
    int y0 = blockIdx.y * TDIM + threadIdx.y;
    for (int y = y0; y < y0 + TDIM && y < rows; y += TROWS) {
        if (x < cols) {
            out[(long long)x * rows + y] = in[(long long)y * cols + x];
        }
    }
}

extern "C" __global__ void transpose_tiled(const float* in, float* out, int rows, int cols)
{
    __shared__ float tile[TDIM][TDIM + 1];
    int x = blockIdx.x * TDIM + threadIdx.x;
    int y = blockIdx.y * TDIM + threadIdx.y;
    for (int j = 0; j < TDIM; j += TROWS) {
        if (x < cols && y + j < rows) {
            tile[threadIdx.y + j][threadIdx.x] = in[(long long)(y + j) * cols + x];
        }
    }
    __syncthreads();
    x = blockIdx.y * TDIM + threadIdx.x;  // column in out = row in in
    y = blockIdx.x * TDIM + threadIdx.y;
    for (int j = 0; j < TDIM; j += TROWS) {
        if (x < rows && y + j < cols) {
            out[(long long)(y + j) * rows + x] = tile[threadIdx.x][threadIdx.y + j];
        }
    }
}
