#include <criterion/criterion.h>
Test(region, placeholder) { cr_assert(1); }
