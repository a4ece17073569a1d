#ifndef COHORT_ZLIB_SHIM_H
#define COHORT_ZLIB_SHIM_H
#include <zlib.h>
#endif
