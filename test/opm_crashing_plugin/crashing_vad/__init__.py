"""A deliberately injected fault: an OPM VAD plugin whose import kills its process, as a native
library built for another CPU does (onnxruntime under QEMU: SIGSEGV). It is a fake on purpose;
the fault tests alone put it on a gateway's path."""

import os

os.abort()  # SIGABRT while the plugin manager imports it
