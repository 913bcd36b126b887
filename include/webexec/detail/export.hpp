/// Symbol visibility for the compiled webexec libraries (not API).
///
/// webexec builds with hidden visibility. Every class whose type information
/// must be shared across shared-library boundaries (exceptions above all, or
/// `catch` fails in another library) is marked `WEBEXEC_API`.
#pragma once

#if defined(_WIN32)
#define WEBEXEC_API
#else
#define WEBEXEC_API __attribute__((visibility("default")))
#endif
