/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Include this to have both blink implementations in the program even
 * when they come from a static archive (libblink.a) and the program only
 * reaches them through IDs: the reference makes the linker take their
 * archive members, and with them the constructors that register them.
 */
#ifndef OUTSIDE_BLINK_REQUIRE_H
#define OUTSIDE_BLINK_REQUIRE_H

#include "blink.h"

MPOPS_OPS_IMPL_REQUIRE(blink, fast)
MPOPS_OPS_IMPL_REQUIRE(blink, slow)

#endif
