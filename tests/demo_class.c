/* SPDX-License-Identifier: BSD-3-Clause */
#include "demo_ops.h"

MPOPS_OPS_CLASS_DEFINE(demo, DEMO_OPS)
