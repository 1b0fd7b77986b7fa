/* SPDX-License-Identifier: BSD-3-Clause */
/* The primary side registers alpha, beta, gamma, in that order. */
#include <stdio.h>
#include <unistd.h>

#include "demo_ops.h"

DEMO_IMPL(alpha, 'A')
DEMO_IMPL(beta, 'B')
DEMO_IMPL(gamma, 'C')
