// Convolution microkernels for the sse2 instruction set (flags set in CMakeLists.txt).
#define SPX_ISA_SSE2 1
#define SPX_ISA_NAME "sse2"
#define SPX_TABLE_GETTER kernel_table_sse2
#include "conv_tiles.inl"
