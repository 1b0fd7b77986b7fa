/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The primary registers legacy, modern, user, in that order: user, the one
 * every case calls, comes last in the name table (by_name's worst case).
 */
#include "dispatch.h"

DISPATCH_IMPL(legacy, wrong)
DISPATCH_IMPL(modern, wrong)
DISPATCH_IMPL(user, kicks[queue & (DISPATCH_QUEUES - 1)])
