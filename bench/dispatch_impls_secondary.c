/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The secondary registers the same implementations in another order (user
 * first): its own table must still map the primary's IDs to its own code.
 */
#include "dispatch.h"

DISPATCH_IMPL(user, kicks[queue & (DISPATCH_QUEUES - 1)])
DISPATCH_IMPL(modern, wrong)
DISPATCH_IMPL(legacy, wrong)
