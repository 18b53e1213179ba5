/* SPDX-License-Identifier: MIT */
/*
 * report.c - metric tables (report.h): one walker prints a table's rows as
 * text lines, another as JSON members; and the small output helpers every
 * command shares.
 */
#include <string.h>
#include "cli/report.h"
#include "tandem/types.h"
#include "base/compiler.h"

static uint64_t u64_at(const void *base, size_t offset)
{
	uint64_t v;

	memcpy(&v, (const char *)base + offset, sizeof(v));
	return v;
}

static int int_at(const void *base, size_t offset)
{
	int v;

	memcpy(&v, (const char *)base + offset, sizeof(v));
	return v;
}

static double f64_at(const void *base, size_t offset)
{
	double v;

	memcpy(&v, (const char *)base + offset, sizeof(v));
	return v;
}

/* Element i of an array row: the i-th shown, its name in *name. */
static uint64_t element(const struct report_field *r, const void *base, unsigned int i,
			const char **name)
{
	unsigned int k = r->index ? r->index[i] : i;

	*name = r->name(k);
	return u64_at(base, r->offset + k * sizeof(uint64_t));
}

/* A scalar row's value, for {/s} and {MiB}. */
static double scalar(const struct report_field *r, const void *base)
{
	switch (r->kind) {
	case REPORT_U64:
		return (double)u64_at(base, r->offset);
	case REPORT_INT:
		return int_at(base, r->offset);
	case REPORT_F64:
		return f64_at(base, r->offset);
	case REPORT_U64_ARRAY:
		break;
	}
	BUG();  /* an array has no one value */
}

static void print_scalar(FILE *f, const struct report_field *r, const void *base,
			 int width)
{
	switch (r->kind) {
	case REPORT_U64:
		fprintf(f, "%*llu", width, (unsigned long long)u64_at(base, r->offset));
		return;
	case REPORT_INT:
		fprintf(f, "%*d", width, int_at(base, r->offset));
		return;
	case REPORT_F64:
		fprintf(f, "%*.*f", width, r->prec, f64_at(base, r->offset));
		return;
	case REPORT_U64_ARRAY:
		break;
	}
	BUG();
}

/* The row whose key is the len bytes at key: a note's reference. */
static const struct report_field *find(const struct report_table *t, const char *key,
				       size_t len)
{
	for (unsigned int i = 0; i < t->nr; i++)
		if (strlen(t->fields[i].key) == len && strncmp(t->fields[i].key, key, len) == 0)
			return &t->fields[i];
	BUG();  /* a note names a row its table does not have */
}

static void print_note(FILE *f, const struct report_style *st, const struct report_table *t,
		       const struct report_field *r, const void *base)
{
	for (const char *s = r->note; *s; s++) {
		const char *end, *cond;
		size_t len;

		if (*s != '{') {
			fputc(*s, f);
			continue;
		}
		end = strchr(s, '}');
		BUG_ON(!end);
		s++;
		len = (size_t)(end - s);
		cond = memchr(s, '?', len);
		if (len == 2 && strncmp(s, "/s", 2) == 0)
			fputs(report_human(scalar(r, base) / (st->seconds > 0 ? st->seconds : 1)), f);
		else if (len == 3 && strncmp(s, "MiB", 3) == 0)
			fprintf(f, "%.1f", scalar(r, base) * PAGE_SIZE / (1 << 20));
		else if (cond && scalar(find(t, s, (size_t)(cond - s)), base) != 0)
			fprintf(f, "%.*s", (int)(end - cond - 1), cond + 1);
		else if (!cond)
			print_scalar(f, find(t, s, len), base, 0);
		s = end;
	}
}

void report_text(FILE *f, const struct report_style *st, const struct report_table *t,
		 const void *base)
{
	for (unsigned int i = 0; i < t->nr; i++) {
		const struct report_field *r = &t->fields[i];

		if (!(r->in & REPORT_TEXT) || (r->when && !(r->when & st->show)))
			continue;
		if (r->kind == REPORT_U64_ARRAY) {
			for (unsigned int k = 0; k < r->nr; k++) {
				const char *name;
				uint64_t v = element(r, base, k, &name);

				fprintf(f, "%*s%-*s %*llu\n", (int)st->indent, "",
					(int)st->label_width, name, (int)st->value_width,
					(unsigned long long)v);
			}
			continue;
		}
		fprintf(f, "%*s%-*s ", (int)st->indent, "", (int)st->label_width, r->label);
		print_scalar(f, r, base, (int)st->value_width);
		if (r->note)
			print_note(f, st, t, r, base);
		fputc('\n', f);
	}
}

void report_json(FILE *f, const struct report_table *t, const void *base)
{
	const char *sep = "";

	for (unsigned int i = 0; i < t->nr; i++) {
		const struct report_field *r = &t->fields[i];

		if (!(r->in & REPORT_JSON))
			continue;
		fprintf(f, "%s\"%s\": ", sep, r->key);
		sep = ", ";
		if (r->kind != REPORT_U64_ARRAY) {
			print_scalar(f, r, base, 0);
			continue;
		}
		fputc('{', f);
		for (unsigned int k = 0; k < r->nr; k++) {
			const char *name;
			uint64_t v = element(r, base, k, &name);

			fprintf(f, "%s\"%s\": %llu", k ? ", " : "", name, (unsigned long long)v);
		}
		fputc('}', f);
	}
}

const char *report_human(double v)
{
	static char bufs[8][16];
	static unsigned int n;
	char *b = bufs[n++ % 8];

	if (v >= 1e9)
		snprintf(b, 16, "%.2fG", v / 1e9);
	else if (v >= 1e6)
		snprintf(b, 16, "%.2fM", v / 1e6);
	else if (v >= 1e4)
		snprintf(b, 16, "%.1fk", v / 1e3);
	else
		snprintf(b, 16, "%.0f", v);
	return b;
}

void json_print_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s && *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch == '\n')
			fputs("\\n", f);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}
