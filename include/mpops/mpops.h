/* SPDX-License-Identifier: BSD-3-Clause */
/** @file mpops.h  Everything: include this or the module headers you need. */
#ifndef MPOPS_MPOPS_H
#define MPOPS_MPOPS_H
#include <mpops/common.h>
#include <mpops/region.h>
#include <mpops/ops.h>
#include <mpops/obj.h>
#include <mpops/channel.h>
#include <mpops/proc.h>
#include <mpops/info.h>
#include <mpops/audit.h>
#include <mpops/pkt.h>
#include <mpops/port.h>
#endif
