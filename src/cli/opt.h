/* SPDX-License-Identifier: MIT */
/*
 * opt.h - a command's options described once, in a table: each row names
 * the option, the kind of value it takes, the field of the command's
 * options struct it sets, the range it allows and its help text. The one
 * table drives getopt_long, the checking of every value (with the same
 * "tandem <cmd>: --<opt>: '<value>': <why>" messages everywhere) and the
 * usage text, so the three cannot drift apart.
 *
 * A command keeps only what a row cannot say: how options combine (one
 * implies another) and checks of the whole configuration.
 */
#ifndef TANDEM_CLI_OPT_H
#define TANDEM_CLI_OPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum opt_kind {
	OPT_FLAG,       /* no value: sets the bool to true */
	OPT_NUM,        /* decimal integer in [min, max] */
	OPT_SIZE,       /* bytes, "<digits>[K|M|G]", in [min, max], a multiple of align */
	OPT_DURATION,   /* "3", "2.5", "1.5s", "250ms": nanoseconds in [min, max], not 0 */
	OPT_PATH,       /* a non-empty string: the const char * points into argv */
	OPT_CHOICE,     /* one name of choices: sets that choice's value */
	OPT_SET,        /* names of choices: sets the OR of their values */
	OPT_HELP,       /* print the command's usage and run nothing */
};

/* opt.flags */
#define OPT_ZERO_OK   (1u << 0) /* OPT_SIZE: a plain "0" besides [min, max] */
#define OPT_LIST      (1u << 1) /* OPT_SET: a comma list of names */
#define OPT_ADD       (1u << 2) /* OPT_SET: each use adds to the set, else replaces it */
#define OPT_ALL_NONE  (1u << 3) /* OPT_SET: "all" or "none" as the whole value */

struct opt_choice {
	const char *name;
	unsigned int value;
	const char *help;       /* for {choices} in the usage; NULL: not listed */
};

/* The i-th choice into *c; false past the last. A function rather than an
 * array so that a choice list can come from the layer that owns the names
 * (wl_workload_name, kvm_kick_mode_name, ...). */
typedef bool (*opt_choices_fn)(unsigned int i, struct opt_choice *c);

/* An opt_choices_fn's body over a fixed table of n choices. */
static inline bool opt_choice_at(const struct opt_choice *table, size_t n, unsigned int i,
				 struct opt_choice *c)
{
	if (i >= n)
		return false;
	*c = table[i];
	return true;
}

struct opt {
	const char *name;               /* --name */
	char short_name;                /* -c, or 0 */
	enum opt_kind kind;
	size_t offset, size;            /* the field set: OPT_FIELD(type, member) */
	uint64_t min, max;              /* OPT_NUM, OPT_SIZE, OPT_DURATION; max 0: none */
	uint64_t align;                 /* OPT_SIZE: 0, or the multiple required */
	const char *align_why;          /* what to say when it is not one */
	const char *range_why;          /* OPT_DURATION: what to say outside [min, max] */
	opt_choices_fn choices;         /* OPT_CHOICE, OPT_SET */
	unsigned int flags;
	/*
	 * Usage: "--name ARG" and the help text, its lines split at '\n' and
	 * aligned. In the text, {default} is the field's value in the defaults
	 * given to opt_usage, {range} is "min..max", both written the way the
	 * option is given (256M, 10, mixed), and a line "{choices}" lists the
	 * choices that have help, one per line.
	 */
	const char *arg;
	const char *help;
};

/* The field an option sets: a bool, unsigned int, enum, uint64_t, long or
 * const char * member of the command's options struct. */
#define OPT_FIELD(type, member) \
	.offset = offsetof(type, member), .size = sizeof(((type *)0)->member)

struct opt_table {
	const char *cmd;                /* messages say "tandem <cmd>: ..." */
	const struct opt *opts;
	unsigned int nr;                /* at most 64 */
	unsigned int help_column;       /* where help text starts in the usage */
	bool operands;                  /* arguments besides options are allowed */
	void (*usage)(FILE *f);         /* --help prints this on stdout */
};

/*
 * Parse argv[1..] (argv[0] is the command) into the options struct dst,
 * which holds the defaults on entry. Returns 0; -1 after printing the usage
 * (--help: exit 0, run nothing); or EXIT_USAGE after saying why on stderr.
 * given (may be NULL): bit i is set when option i appeared. first_operand
 * (with t->operands): the index of the first argument that is not an
 * option, argc if none.
 */
int opt_parse(const struct opt_table *t, int argc, char **argv, void *dst,
	      uint64_t *given, int *first_operand);
/* Whether the option named name appeared (given from opt_parse). */
bool opt_given(const struct opt_table *t, uint64_t given, const char *name);
/* The option lines of the usage text; defaults fill {default}. */
void opt_usage(FILE *f, const struct opt_table *t, const void *defaults);

#endif
