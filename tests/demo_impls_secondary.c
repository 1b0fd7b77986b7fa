/* SPDX-License-Identifier: BSD-3-Clause */
/* The secondary registers another order and a subset (no beta), plus delta,
 * which the primary does not have. */
#include <stdio.h>
#include <unistd.h>

#include "demo_ops.h"

DEMO_IMPL(gamma, 'C')
DEMO_IMPL(delta, 'D')
DEMO_IMPL(alpha, 'A')
