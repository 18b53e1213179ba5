/* SPDX-License-Identifier: MIT */
/*
 * opt.c - option tables (opt.h): getopt_long from the rows, each value
 * parsed and checked by its row's kind, and the usage text from the rows.
 *
 * getopt_long reports an option by its short letter or, for long-only
 * options, by OPT_LONG_ONLY + its row index; either leads back to the row.
 */
#include <getopt.h>
#include <string.h>
#include "cli/cli.h"
#include "cli/opt.h"
#include "base/clock.h"
#include "base/compiler.h"

#define OPT_MAX_ROWS    64      /* the given mask has a bit per row */
#define OPT_LONG_ONLY   256     /* above every short option letter */

/* A {choices} list: names indented and padded so that help lines up. */
#define CHOICE_INDENT   10
#define CHOICE_WIDTH    13

/* ---- fields ------------------------------------------------------------ */

static void field_store(void *dst, const struct opt *o, uint64_t v)
{
	char *p = (char *)dst + o->offset;
	uint32_t v32 = (uint32_t)v;
	bool b = v != 0;

	switch (o->size) {
	case sizeof(bool):
		memcpy(p, &b, sizeof(b));
		break;
	case sizeof(uint32_t):
		memcpy(p, &v32, sizeof(v32));
		break;
	case sizeof(uint64_t):
		memcpy(p, &v, sizeof(v));
		break;
	default:
		BUG();  /* OPT_FIELD of a member no kind can hold */
	}
}

static uint64_t field_load(const void *src, const struct opt *o)
{
	const char *p = (const char *)src + o->offset;
	uint64_t v = 0;
	uint32_t v32;
	bool b;

	switch (o->size) {
	case sizeof(bool):
		memcpy(&b, p, sizeof(b));
		return b;
	case sizeof(uint32_t):
		memcpy(&v32, p, sizeof(v32));
		return v32;
	case sizeof(uint64_t):
		memcpy(&v, p, sizeof(v));
		return v;
	default:
		BUG();
	}
}

/* ---- choices ----------------------------------------------------------- */

/* The choice named by the len bytes at name; false if none. */
static bool choice_find(const struct opt *o, const char *name, size_t len,
			struct opt_choice *c)
{
	for (unsigned int i = 0; o->choices(i, c); i++)
		if (strlen(c->name) == len && strncmp(c->name, name, len) == 0)
			return true;
	return false;
}

static int choice_unknown(const char *cmd, const struct opt *o, const char *name,
			  size_t len)
{
	struct opt_choice c;

	fprintf(stderr, "tandem %s: --%s: '%.*s': unknown (have:", cmd, o->name,
		(int)len, name);
	for (unsigned int i = 0; o->choices(i, &c); i++)
		fprintf(stderr, " %s", c.name);
	fprintf(stderr, ")\n");
	return -1;
}

/* OPT_SET: the names in val (a comma list with OPT_LIST; empty items are
 * skipped) into *set. */
static int parse_set(const char *cmd, const struct opt *o, const char *val,
		     unsigned int *set)
{
	struct opt_choice c;

	if ((o->flags & OPT_ALL_NONE) && strcmp(val, "all") == 0) {
		*set = 0;
		for (unsigned int i = 0; o->choices(i, &c); i++)
			*set |= c.value;
		return 0;
	}
	if ((o->flags & OPT_ALL_NONE) && strcmp(val, "none") == 0) {
		*set = 0;
		return 0;
	}
	if (!(o->flags & OPT_LIST)) {
		if (!choice_find(o, val, strlen(val), &c))
			return choice_unknown(cmd, o, val, strlen(val));
		*set |= c.value;
		return 0;
	}
	if (!*val)
		return cli_bad_value(cmd, o->name, NULL, "empty value");
	for (const char *s = val; *s; ) {
		size_t len = strcspn(s, ",");

		if (len && !choice_find(o, s, len, &c))
			return choice_unknown(cmd, o, s, len);
		if (len)
			*set |= c.value;
		s += len;
		s += *s == ',';
	}
	return 0;
}

/* ---- parsing ----------------------------------------------------------- */

/* Parse val for row o and store it in dst. Returns 0 or -1 (said why). */
static int opt_set(const char *cmd, const struct opt *o, const char *val, void *dst)
{
	uint64_t max = o->max ? o->max : UINT64_MAX;
	struct opt_choice c;
	unsigned int set;
	uint64_t v = 0;

	switch (o->kind) {
	case OPT_FLAG:
		v = 1;
		break;
	case OPT_NUM:
		if (cli_u64_arg(cmd, o->name, val, o->min, max, &v))
			return -1;
		break;
	case OPT_SIZE:
		if ((o->flags & OPT_ZERO_OK) && strcmp(val, "0") == 0)
			break;
		if (cli_size_arg(cmd, o->name, val, o->min, max, &v))
			return -1;
		if (o->align && v % o->align)
			return cli_bad_value(cmd, o->name, val, o->align_why);
		break;
	case OPT_DURATION:
		if (cli_duration_arg(cmd, o->name, val, &v))
			return -1;
		if (v < o->min || v > max)
			return cli_bad_value(cmd, o->name, val, o->range_why);
		break;
	case OPT_PATH:
		if (!*val) {
			fprintf(stderr, "tandem %s: --%s: empty path\n", cmd, o->name);
			return -1;
		}
		BUG_ON(o->size != sizeof(val));
		memcpy((char *)dst + o->offset, &val, sizeof(val));
		return 0;
	case OPT_CHOICE:
		if (!choice_find(o, val, strlen(val), &c))
			return choice_unknown(cmd, o, val, strlen(val));
		v = c.value;
		break;
	case OPT_SET:
		set = (o->flags & OPT_ADD) ? (unsigned int)field_load(dst, o) : 0;
		if (parse_set(cmd, o, val, &set))
			return -1;
		v = set;
		break;
	case OPT_HELP:
		BUG();  /* opt_parse handles it */
	}
	field_store(dst, o, v);
	return 0;
}

/* The row getopt_long's answer c stands for; t->nr if none. */
static unsigned int row_of(const struct opt_table *t, int c)
{
	if (c >= OPT_LONG_ONLY)
		return (unsigned int)(c - OPT_LONG_ONLY);
	for (unsigned int i = 0; i < t->nr; i++)
		if (t->opts[i].short_name == c)
			return i;
	return t->nr;
}

int opt_parse(const struct opt_table *t, int argc, char **argv, void *dst,
	      uint64_t *given, int *first_operand)
{
	struct option longopts[OPT_MAX_ROWS + 1];
	char optstring[3 * OPT_MAX_ROWS + 2], *os = optstring;
	uint64_t seen = 0;
	int c;

	BUG_ON(t->nr > OPT_MAX_ROWS);
	*os++ = ':';    /* missing values come back as ':' */
	for (unsigned int i = 0; i < t->nr; i++) {
		const struct opt *o = &t->opts[i];
		bool has_arg = o->kind != OPT_FLAG && o->kind != OPT_HELP;

		longopts[i] = (struct option){
			.name = o->name,
			.has_arg = has_arg ? required_argument : no_argument,
			.val = o->short_name ? o->short_name : OPT_LONG_ONLY + (int)i,
		};
		if (o->short_name) {
			*os++ = o->short_name;
			if (has_arg)
				*os++ = ':';
		}
	}
	longopts[t->nr] = (struct option){ 0 };
	*os = '\0';

	optind = 0;     /* full re-initialisation of getopt */
	while ((c = getopt_long(argc, argv, optstring, longopts, NULL)) != -1) {
		unsigned int i = row_of(t, c);

		if (i >= t->nr) {       /* '?' or ':': unknown, or a value missing */
			cli_getopt_error(t->cmd, c, argv);
			return EXIT_USAGE;
		}
		if (t->opts[i].kind == OPT_HELP) {
			t->usage(stdout);
			return -1;
		}
		if (opt_set(t->cmd, &t->opts[i], optarg, dst))
			return EXIT_USAGE;
		seen |= 1ULL << i;
	}
	if (optind < argc && !t->operands) {
		fprintf(stderr, "tandem %s: unexpected argument '%s'\n", t->cmd, argv[optind]);
		return EXIT_USAGE;
	}
	if (given)
		*given = seen;
	if (first_operand)
		*first_operand = optind;
	return 0;
}

bool opt_given(const struct opt_table *t, uint64_t given, const char *name)
{
	for (unsigned int i = 0; i < t->nr; i++)
		if (strcmp(t->opts[i].name, name) == 0)
			return given & (1ULL << i);
	BUG();  /* a name not in the table */
}

/* ---- usage ------------------------------------------------------------- */

/* v written the way the option takes it: 256M, 10, 250ms, mixed. */
static void format_value(FILE *f, const struct opt *o, uint64_t v)
{
	static const struct { uint64_t unit; char suffix; } sizes[] = {
		{ 1ULL << 30, 'G' }, { 1ULL << 20, 'M' }, { 1ULL << 10, 'K' },
	};
	struct opt_choice c;

	switch (o->kind) {
	case OPT_SIZE:
		for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
			if (v && v % sizes[i].unit == 0) {
				fprintf(f, "%llu%c", (unsigned long long)(v / sizes[i].unit),
					sizes[i].suffix);
				return;
			}
		}
		break;
	case OPT_DURATION:
		if (v % NSEC_PER_SEC == 0)
			fprintf(f, "%llu", (unsigned long long)(v / NSEC_PER_SEC));
		else if (v < NSEC_PER_SEC && v % NSEC_PER_MSEC == 0)
			fprintf(f, "%llums", (unsigned long long)(v / NSEC_PER_MSEC));
		else
			fprintf(f, "%.9g", (double)v / NSEC_PER_SEC);
		return;
	case OPT_CHOICE:
		for (unsigned int i = 0; o->choices(i, &c); i++) {
			if (c.value == v) {
				fputs(c.name, f);
				return;
			}
		}
		fputc('?', f);
		return;
	default:
		break;
	}
	fprintf(f, "%llu", (unsigned long long)v);
}

/* Lines of text (split at '\n'), each but the first indented to col. */
static void print_lines(FILE *f, const char *text, unsigned int col)
{
	for (const char *s = text; *s; ) {
		size_t len = strcspn(s, "\n");

		if (s != text)
			fprintf(f, "%*s", (int)col, "");
		fprintf(f, "%.*s\n", (int)len, s);
		s += len;
		s += *s == '\n';
	}
}

static void print_choices(FILE *f, const struct opt *o)
{
	struct opt_choice c;

	for (unsigned int i = 0; o->choices(i, &c); i++) {
		if (!c.help)
			continue;
		fprintf(f, "%*s%-*s", CHOICE_INDENT, "", CHOICE_WIDTH, c.name);
		/* A name that fills its column gets its help on the next line. */
		if (strlen(c.name) >= CHOICE_WIDTH)
			fprintf(f, "\n%*s", CHOICE_INDENT + CHOICE_WIDTH, "");
		print_lines(f, c.help, CHOICE_INDENT + CHOICE_WIDTH);
	}
}

/* One line of help text, placeholders filled in. */
static void print_help_line(FILE *f, const struct opt *o, const char *line, size_t len,
			    const void *defaults)
{
	static const char def[] = "{default}", range[] = "{range}";

	for (size_t i = 0; i < len; i++) {
		if (len - i >= strlen(def) && strncmp(line + i, def, strlen(def)) == 0) {
			format_value(f, o, field_load(defaults, o));
			i += strlen(def) - 1;
		} else if (len - i >= strlen(range) &&
			   strncmp(line + i, range, strlen(range)) == 0) {
			format_value(f, o, o->min);
			fputs("..", f);
			format_value(f, o, o->max);
			i += strlen(range) - 1;
		} else {
			fputc(line[i], f);
		}
	}
	fputc('\n', f);
}

void opt_usage(FILE *f, const struct opt_table *t, const void *defaults)
{
	for (unsigned int i = 0; i < t->nr; i++) {
		const struct opt *o = &t->opts[i];
		char left[64];
		int n;

		if (o->short_name)
			n = snprintf(left, sizeof(left), "  -%c, --%s", o->short_name, o->name);
		else
			n = snprintf(left, sizeof(left), "      --%s", o->name);
		if (o->arg)
			n += snprintf(left + n, sizeof(left) - (size_t)n, " %s", o->arg);
		/* The help starts on the same line if a space is left before it. */
		if ((unsigned int)n < t->help_column)
			fprintf(f, "%-*s", (int)t->help_column, left);
		else
			fprintf(f, "%s\n%*s", left, (int)t->help_column, "");
		for (const char *s = o->help; *s; ) {
			size_t len = strcspn(s, "\n");

			if (len == strlen("{choices}") && strncmp(s, "{choices}", len) == 0) {
				print_choices(f, o);
			} else {
				if (s != o->help)
					fprintf(f, "%*s", (int)t->help_column, "");
				print_help_line(f, o, s, len, defaults);
			}
			s += len;
			s += *s == '\n';
		}
	}
}
