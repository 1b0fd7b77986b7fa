/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * An ops class whose op returns something other than a signed integer must
 * not compile, and the error must name the op. Compiled once per variant
 * by tests/compile_fail/meson.build (RET_OK is the control: it compiles).
 */
#include <mpops/ops.h>

struct dev;

#if defined(RET_POINTER)
#define BAD_OPS(OP)                                                          \
	OP(int, open, (struct dev *))                                       \
	OP(const char *, get_name, (struct dev *))
#elif defined(RET_DOUBLE)
#define BAD_OPS(OP)                                                          \
	OP(int, open, (struct dev *))                                       \
	OP(double, get_rate, (struct dev *))
#elif defined(RET_VOID)
#define BAD_OPS(OP)                                                          \
	OP(int, open, (struct dev *))                                       \
	OP(void, reset, (struct dev *))
#elif defined(RET_UNSIGNED)
#define BAD_OPS(OP)                                                          \
	OP(int, open, (struct dev *))                                       \
	OP(unsigned, count, (struct dev *))
#elif defined(RET_OK)
#define BAD_OPS(OP)                                                          \
	OP(int, open, (struct dev *))                                       \
	OP(long, count, (struct dev *))
#endif

MPOPS_OPS_CLASS_DECLARE(bad, BAD_OPS)
MPOPS_OPS_CLASS_DEFINE(bad, BAD_OPS)
