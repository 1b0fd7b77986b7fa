/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A consumer with its own strlcpy, as DPDK has (rte_strlcpy, and strlcpy
 * itself where libbsd is not used). If mpops's cflags brought libbsd's
 * overlay (-isystem .../bsd -DLIBBSD_OVERLAY), <string.h> would declare
 * strlcpy and this file would not compile.
 */
#include <string.h>

#include <mpops/mpops.h>

static size_t strlcpy(char *dst, const char *src, size_t size)
{
	size_t n = strlen(src);

	if (size) {
		size_t k = n < size - 1 ? n : size - 1;

		memcpy(dst, src, k);
		dst[k] = '\0';
	}
	return n;
}

size_t outside_copy_name(char *dst, const char *src, size_t size);

size_t outside_copy_name(char *dst, const char *src, size_t size)
{
	return strlcpy(dst, src, size);
}
