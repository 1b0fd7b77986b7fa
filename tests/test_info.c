#include <criterion/criterion.h>
Test(info, placeholder) { cr_assert(1); }
