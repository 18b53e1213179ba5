/* SPDX-License-Identifier: MIT */
/*
 * scenario.h - what the scenario stress tests share: the listing
 * of killed VMs and first failures after a run's one-line summary.
 */
#ifndef TANDEM_TESTS_HARNESS_SCENARIO_H
#define TANDEM_TESTS_HARNESS_SCENARIO_H

#include <stdio.h>
#include "tandem/workload.h"

static inline void print_failures(const struct scenario_result *r)
{
	for (unsigned int i = 0; i < r->nr_vms; i++)
		if (r->vm[i].killed)
			printf("#   [%.3fs] %s\n", r->vm[i].killed_at_s, r->vm[i].kill_msg);
	for (unsigned int i = 0; i < r->nr_first; i++)
		printf("#   [%.3fs] vm%d vcpu%d %s: %s\n", r->first[i].t_s, r->first[i].vm,
		       r->first[i].vcpu, wl_fail_kind_key(r->first[i].kind), r->first[i].msg);
	fflush(stdout);
}

#endif
