/* SPDX-License-Identifier: BSD-3-Clause */
#include "dispatch.h"

MPOPS_OPS_CLASS_DEFINE(dispatch, DISPATCH_OPS)
