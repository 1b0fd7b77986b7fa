/* SPDX-License-Identifier: BSD-3-Clause */
/* The transports' life-cycle class (transport.h); vtpci is defined in vtnet.c. */
#include "vtnet_priv.h"

MPOPS_OPS_CLASS_DEFINE(vtnet_tr, VTNET_TR_OPS)
