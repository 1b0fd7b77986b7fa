/* SPDX-License-Identifier: BSD-3-Clause */
#include "blink.h"

MPOPS_OPS_CLASS_DEFINE(blink, BLINK_OPS)
