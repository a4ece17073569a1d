#ifndef COHORT_CBLAS_SHIM_H
#define COHORT_CBLAS_SHIM_H
#include <cblas.h>
#endif
