// Convolution microkernels for the avx512 instruction set (flags set in CMakeLists.txt).
#define SPX_ISA_AVX512 1
#define SPX_ISA_NAME "avx512"
#define SPX_TABLE_GETTER kernel_table_avx512
#include "conv_tiles.inl"
