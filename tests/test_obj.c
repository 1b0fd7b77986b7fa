#include <criterion/criterion.h>
Test(obj, placeholder) { cr_assert(1); }
