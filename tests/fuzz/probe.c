/* SPDX-License-Identifier: BSD-3-Clause */
/* Can clang link a libFuzzer harness here? (tests/fuzz/meson.build) */
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	(void)data;
	(void)size;
	return 0;
}
