/* SPDX-License-Identifier: BSD-3-Clause */
/* MPOPS_AUDIT_ALLOW names a member that exists, or does not compile
 * (tests/audit/meson.build compiles this with and without -DMISSING). */
#include <mpops/audit.h>

struct x_shared {
	uint64_t n;
	void *p;
};
#ifdef MISSING
MPOPS_AUDIT_ALLOW(x_shared, q, "a member that is not there");
#else
MPOPS_AUDIT_ALLOW(x_shared, p, "a member that is there");
#endif
