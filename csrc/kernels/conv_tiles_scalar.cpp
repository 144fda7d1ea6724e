// Convolution microkernels for the scalar instruction set (flags set in CMakeLists.txt).
#define SPX_ISA_SCALAR 1
#define SPX_ISA_NAME "scalar"
#define SPX_TABLE_GETTER kernel_table_scalar
#include "conv_tiles.inl"
