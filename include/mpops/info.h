/* SPDX-License-Identifier: BSD-3-Clause */
/**
 * @file info.h
 * Introspection: what this process resolves, and who is attached.
 */
#ifndef MPOPS_INFO_H
#define MPOPS_INFO_H

#include <stdio.h>

#include <mpops/common.h>

#ifdef __cplusplus
extern "C" {
#endif

struct mpops_region;

/** mpops_info_print() flags */
#define MPOPS_INFO_F_JSON (1u << 0) /**< one JSON object instead of text */

/**
 * Print, for the calling process: every registered ops class (name,
 * signature hash and text) and implementation (ID, name, the local address
 * of its table and the symbol and object file dladdr finds for it), the
 * IDs of the bound name table this process has not registered, every class
 * of the name table whoever registered it (its signature hash, IDs and
 * implementations, and whether this process has the class with the same
 * signature, another one, or not at all), and, with a
 * region, the region header and the attached processes with their
 * executables and build-ids. Symbols are found for exported names only:
 * link executables with -rdynamic (meson: export_dynamic) to see more.
 * @return 0, -EINVAL (NULL @p out), -EIO write error.
 */
MPOPS_API int mpops_info_print(struct mpops_region *r, FILE *out,
			       unsigned flags);

#ifdef __cplusplus
}
#endif
#endif /* MPOPS_INFO_H */
