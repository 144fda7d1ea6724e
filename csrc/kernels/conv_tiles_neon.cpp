// Convolution microkernels for the neon instruction set (flags set in CMakeLists.txt).
#define SPX_ISA_NEON 1
#define SPX_ISA_NAME "neon"
#define SPX_TABLE_GETTER kernel_table_neon
#include "conv_tiles.inl"
