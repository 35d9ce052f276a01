# mod_runai_token — see README.md. Run ./configure first (make does it for you).

# `make run`, `make test`, `make test-asan`, `make leakcheck` and
# `make bench` install what is missing and configure first, then build in a
# sub-make that reads config.mk. `make deb` and `make deb-test` build in a
# copy of the tree.
ifeq ($(filter run test test-asan leakcheck bench deb deb-test,$(MAKECMDGOALS)),)
-include config.mk
endif

MODULE   = mod_runai_token
# The layout is the architecture: src/core needs no httpd (APR, OpenSSL,
# jansson, libjwt) and is compiled without httpd's include directory, so an
# httpd header there fails the build; the unit tests and the fuzzers link it
# alone. src/httpd and mod_runai_token.c are the glue.
CORE     = $(sort $(wildcard src/core/*.c))
GLUE     = mod_runai_token.c $(sort $(wildcard src/httpd/*.c))
WARN     = -Wall -Wextra -Werror
# One object per source file, with its header dependencies (-MMD).
OBJ      = build/obj
SO       = .libs/$(MODULE).so
CORE_OBJS = $(CORE:%.c=$(OBJ)/%.o)
GLUE_OBJS = $(GLUE:%.c=$(OBJ)/%.o)
# make V=1 shows the compiler's command lines.
Q        = $(if $(filter 1,$(V)),,@)
# Extra flags, e.g. the sanitizer build of scripts/test-asan.sh.
XCFLAGS  =
XLDFLAGS =
MOD_CFLAGS = $(APXS_CFLAGS) $(WARN) -fPIC -MMD -MP $(XCFLAGS)
UNIT_BIN = t/unit/bin/core_test
TOOLS    = t/bin/jwt_verify t/bin/kube_verify
# The LoadModule file, with the module directory apxs names.
LOADFILE = conf/runai_token.load

.PHONY: all install test check test-asan check-asan leakcheck check-leaks demo unit test-tools run bench \
        fuzz clean distclean format format-check deb deb-test

all: $(SO) $(LOADFILE)

config.mk: configure
	./configure $(CONFIGURE_FLAGS)

$(OBJ)/src/core/%.o: src/core/%.c config.mk
	@mkdir -p $(dir $@)
	@echo "  CC (core)  $<"
	$(Q)$(CC) $(MOD_CFLAGS) $(CORE_CFLAGS) -Isrc/core -c -o $@ $<

$(OBJ)/%.o: %.c config.mk
	@mkdir -p $(dir $@)
	@echo "  CC (httpd) $<"
	$(Q)$(CC) $(MOD_CFLAGS) $(CORE_CFLAGS) $(HTTPD_CFLAGS) -Isrc/core -Isrc/httpd \
	    -c -o $@ $<

$(SO): $(CORE_OBJS) $(GLUE_OBJS)
	@mkdir -p $(dir $@)
	@echo "  LD         $@"
	$(Q)$(CC) -shared -fPIC -o $@ $^ $(APXS_LDFLAGS) $(XLDFLAGS) $(DEP_LIBS)

-include $(CORE_OBJS:.o=.d) $(GLUE_OBJS:.o=.d)

$(LOADFILE): conf/runai_token.load.in config.mk
	sed 's|@LIBEXECDIR@|$(LIBEXECDIR)|g' $< >$@.tmp && mv $@.tmp $@

# DESTDIR: a staging root (the Debian package's build). apxs -i knows no
# DESTDIR, so install(1) copies the module where apxs says modules live.
# ENABLE=1 (Debian's layout) adds the .load and .conf files to
# mods-available and, into the running system only, runs a2enmod.
install: all
	install -D -m 644 $(SO) $(DESTDIR)$(LIBEXECDIR)/$(MODULE).so
ifeq ($(ENABLE),1)
	install -d $(DESTDIR)$(SYSCONFDIR)/mods-available
	install -m 644 $(LOADFILE) conf/runai_token.conf $(DESTDIR)$(SYSCONFDIR)/mods-available/
ifeq ($(DESTDIR),)
	a2enmod runai_token
endif
endif

$(UNIT_BIN): t/unit/core_test.c $(CORE_OBJS) config.mk
	@mkdir -p $(dir $@)
	$(CC) $(WARN) -g -O1 $(CORE_CFLAGS) -Isrc/core -o $@ t/unit/core_test.c \
	    $(CORE_OBJS) $(DEP_LIBS) $(APR_LIBS)

unit: $(UNIT_BIN)

t/bin/jwt_verify: t/tools/jwt_verify.c config.mk
	@mkdir -p $(dir $@)
	$(CC) $(WARN) -g -O1 $(CORE_CFLAGS) -o $@ $< $(DEP_LIBS)

# go-oidc from Debian (golang-github-coreos-go-oidc-dev) in GOPATH mode: no
# module proxy, no network; the build cache under build/, not in $HOME.
GO_ENV = GO111MODULE=off GOFLAGS= GOENV=off GOPROXY=off \
         GOPATH='$(CURDIR)/build/go:/usr/share/gocode' GOCACHE='$(CURDIR)/build/go/cache'

t/bin/kube_verify: t/tools/kube_verify.go
	@mkdir -p $(dir $@) build/go
	$(GO_ENV) go build -o $@ $<

test-tools: $(TOOLS)

# The whole suite on a fresh machine: packages, npm modules of the
# conformance tests (again when t/node/package-lock.json is newer than the
# installed ones), configure, build, run.
test:
	scripts/deps.sh
	[ t/node/node_modules/.package-lock.json -nt t/node/package-lock.json ] || \
	    [ ! -f t/node/package-lock.json ] || npm ci --prefix t/node --no-audit --no-fund
	[ -f config.mk ] || ./configure $(CONFIGURE_FLAGS)
	$(MAKE) check

# The suite alone: unit tests (t/unit/*.t) run inside the same Apache::Test
# harness as the end-to-end tests, so prove's summary covers everything.
check: all unit test-tools
	APACHE_TEST_ULIMIT_SET=1 perl t/TEST.PL -clean >/dev/null 2>&1 || true
	APACHE_TEST_ULIMIT_SET=1 perl t/TEST.PL -apxs $(APXS) $(TEST_FLAGS)

# The whole suite against the module built with ASan and UBSan (into
# build/asan; .libs is not touched), httpd with the sanitizer runtime
# preloaded, then the request mix of leakcheck under LeakSanitizer. Fails
# on a failed test or on any sanitizer report. See docs/sanitizers.md.
test-asan:
	scripts/deps.sh --sanitizers
	[ t/node/node_modules/.package-lock.json -nt t/node/package-lock.json ] || \
	    [ ! -f t/node/package-lock.json ] || npm ci --prefix t/node --no-audit --no-fund
	[ -f config.mk ] || ./configure $(CONFIGURE_FLAGS)
	$(MAKE) check-asan

SAN_ENV = APXS='$(APXS)' CORE_CFLAGS='$(CORE_CFLAGS)' DEP_LIBS='$(DEP_LIBS)' \
          APR_LIBS='$(APR_LIBS)' WARN='$(WARN)' TEST_FLAGS='$(TEST_FLAGS)'

check-asan: test-tools
	$(SAN_ENV) scripts/test-asan.sh

# httpd -X under valgrind memcheck through every route and error path
# (scripts/leakcheck.py); fails on a block lost by the module, libjwt or
# jansson. See docs/sanitizers.md.
leakcheck:
	scripts/deps.sh --sanitizers
	[ -f config.mk ] || ./configure $(CONFIGURE_FLAGS)
	$(MAKE) check-leaks

check-leaks: all
	APXS='$(APXS)' scripts/leakcheck.sh

run:
	scripts/deps.sh --build-only
	[ -f config.mk ] || ./configure $(CONFIGURE_FLAGS)
	$(MAKE) all
	$(MAKE) demo

demo: all
	MODULE=$(CURDIR)/$(SO) APXS=$(APXS) ./scripts/run-demo.sh

# wrk on loopback; figures are ratios to a ceiling measured in the same run.
# wrk against a local httpd; see bench/README.md.
bench:
	scripts/deps.sh
	[ -f config.mk ] || ./configure $(CONFIGURE_FLAGS)
	$(MAKE) all
	/usr/bin/python3 bench/bench.py

# The Debian package (debian/), built with dpkg-buildpackage in a temporary
# copy of the tree and checked with lintian; the .deb files land in
# build/deb/. See docs/install.md.
deb:
	scripts/deb-build.sh build/deb

# As root: the package in the system's apache2 (install, a2enmod, a token
# from it, purge), which ends as it was; see scripts/deb-test.sh.
deb-test:
	scripts/deb-test.sh

# libFuzzer targets of the core, FUZZ_SECONDS (60) each; see fuzz/README.md.
fuzz:
	scripts/deps.sh --sanitizers
	fuzz/run.sh

FORMATTED = mod_runai_token.c $(wildcard src/*/*.[ch] t/unit/*.c t/tools/*.c fuzz/*.[ch] bench/*.c)

format:
	clang-format -i $(FORMATTED)

# Fails when clang-format would change a file (.ci/run runs it).
format-check:
	clang-format --dry-run -Werror $(FORMATTED)

clean:
	rm -rf .libs *.la *.lo *.slo t/unit/bin t/bin build $(LOADFILE) $(LOADFILE).tmp
	-[ -f t/TEST.PL ] && APACHE_TEST_ULIMIT_SET=1 perl t/TEST.PL -clean >/dev/null 2>&1 || true

distclean: clean
	rm -f config.mk
