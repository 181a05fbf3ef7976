# The two commands a newcomer needs: `make run` and `make test`. Each sets itself up first:
# a virtual environment in .venv with Watchpost and its dependencies installed.

PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' && { echo $$p; break; }; done)
VENV   ?= .venv
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test bench lint clean browser openmp rtsp

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Watchpost needs Python 3.11 or newer (python3.11+ on PATH)"; exit 1; }
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV) || { \
		echo "Could not create a virtual environment: on Debian/Ubuntu install python3-venv"; exit 1; }
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
	@rm -f $(VENV)/.installed-*; touch $@

# LightGBM (the crowd density trees) links the system's OpenMP runtime (libgomp1 on Debian): as root with apt,
# install it when it is missing.
openmp:
	@if ! { command -v ldconfig >/dev/null && ldconfig -p | grep -q libgomp.so.1; }; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "Installing the OpenMP runtime (libgomp1) for LightGBM"; \
			$(APT_INSTALL) libgomp1 >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1; $(APT_INSTALL) libgomp1 >/dev/null; }; \
		else echo "LightGBM needs the OpenMP runtime: install libgomp1 (Debian/Ubuntu) or libgomp (others)"; fi; \
	fi

run: $(STAMP) openmp
	$(VENV)/bin/watchpost run

# The console's browser tests drive Debian's chromium (Playwright downloads no browser here). As root with
# apt, install it, and a CJK font so the screenshots show the Chinese pages; otherwise those tests skip.
APT_INSTALL = DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends
browser:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		want=""; [ -x /usr/bin/chromium ] || want="chromium"; \
		{ command -v fc-list >/dev/null && fc-list :lang=zh | grep -q .; } || want="$$want fonts-wqy-zenhei"; \
		if [ -n "$$want" ]; then \
			echo "Installing for the browser tests:$$want"; \
			$(APT_INSTALL) $$want >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1; $(APT_INSTALL) $$want >/dev/null; } \
				|| echo "could not install$$want: the browser tests skip without chromium"; \
		fi; \
	elif [ ! -x /usr/bin/chromium ]; then \
		echo "No /usr/bin/chromium (install Debian's chromium as root): the browser tests will skip"; \
	fi

# The RTSP camera tests serve H.264, H.265 and RTP/JPEG from GStreamer's RTSP server, which has no wheel: it runs in
# the system's Python with PyGObject (x264 comes in plugins-ugly; the H.265 stream is a file PyAV's x265 wrote). As
# root with apt, install it; otherwise those tests skip.
RTSP_PACKAGES = python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly
rtsp:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		if ! /usr/bin/python3 -c 'import gi; gi.require_version("GstRtspServer", "1.0"); from gi.repository import Gst; Gst.init(None); assert Gst.ElementFactory.find("rtpjpegpay") and Gst.ElementFactory.find("x264enc")' >/dev/null 2>&1; then \
			echo "Installing GStreamer's RTSP server for the RTSP camera tests"; \
			$(APT_INSTALL) $(RTSP_PACKAGES) >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1; $(APT_INSTALL) $(RTSP_PACKAGES) >/dev/null; } \
				|| echo "could not install GStreamer's RTSP server: the RTSP camera tests skip"; \
		fi; \
	fi

test: $(STAMP) openmp browser rtsp
	$(VENV)/bin/python -m pytest

bench: $(STAMP)
	$(VENV)/bin/watchpost bench ingest

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) var .pytest_cache
