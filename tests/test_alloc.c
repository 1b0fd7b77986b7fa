#include <criterion/criterion.h>
Test(alloc, placeholder) { cr_assert(1); }
