/* SPDX-License-Identifier: MIT */
#include "probe.h"

PROBE("unmapped");

void probe_main(const struct hvm_start_info *si)
{
	(void)si;
	probe_fail("not written yet");
}
