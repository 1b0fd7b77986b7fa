/* SPDX-License-Identifier: BSD-3-Clause */
#include "blink_impl.h"

BLINK_IMPL(slow, 'S', 2)
