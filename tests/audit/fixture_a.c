/* SPDX-License-Identifier: BSD-3-Clause */
/* The fixture's types in DWARF (fixture.h): one unit of two. */
#include "fixture.h"

struct fx_dev_shared fx_dev;
fx_anon_shared fx_anon;
