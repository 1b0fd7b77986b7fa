#include <criterion/criterion.h>
Test(channel, placeholder) { cr_assert(1); }
