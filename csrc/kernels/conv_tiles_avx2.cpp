// Convolution microkernels for the avx2 instruction set (flags set in CMakeLists.txt).
#define SPX_ISA_AVX2 1
#define SPX_ISA_NAME "avx2"
#define SPX_TABLE_GETTER kernel_table_avx2
#include "conv_tiles.inl"
