/// Clang thread-safety annotations (not API), after abseil's model.
///
/// The macros expand to clang's `-Wthread-safety` attributes and to nothing
/// under other compilers. Members a mutex guards say so with
/// `WEBEXEC_GUARDED_BY(mutex_)`; functions that expect a lock held say
/// `WEBEXEC_REQUIRES(mutex_)`. The `thread-safety` preset builds everything
/// with clang and `-Wthread-safety -Werror`, so these rules are checked.
///
/// libstdc++'s `std::mutex` carries no annotations, so guarded members sit
/// behind `webexec::detail::Mutex` (detail/mutex.hpp), which does.
#pragma once

#if defined(__clang__)
#define WEBEXEC_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define WEBEXEC_THREAD_ANNOTATION(x)
#endif

#define WEBEXEC_CAPABILITY(name) WEBEXEC_THREAD_ANNOTATION(capability(name))
#define WEBEXEC_SCOPED_CAPABILITY WEBEXEC_THREAD_ANNOTATION(scoped_lockable)
#define WEBEXEC_GUARDED_BY(x) WEBEXEC_THREAD_ANNOTATION(guarded_by(x))
#define WEBEXEC_PT_GUARDED_BY(x) WEBEXEC_THREAD_ANNOTATION(pt_guarded_by(x))
#define WEBEXEC_ACQUIRED_BEFORE(...) WEBEXEC_THREAD_ANNOTATION(acquired_before(__VA_ARGS__))
#define WEBEXEC_ACQUIRED_AFTER(...) WEBEXEC_THREAD_ANNOTATION(acquired_after(__VA_ARGS__))
#define WEBEXEC_REQUIRES(...) WEBEXEC_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define WEBEXEC_ACQUIRE(...) WEBEXEC_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define WEBEXEC_RELEASE(...) WEBEXEC_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define WEBEXEC_TRY_ACQUIRE(...) WEBEXEC_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define WEBEXEC_EXCLUDES(...) WEBEXEC_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define WEBEXEC_ASSERT_CAPABILITY(x) WEBEXEC_THREAD_ANNOTATION(assert_capability(x))
#define WEBEXEC_RETURN_CAPABILITY(x) WEBEXEC_THREAD_ANNOTATION(lock_returned(x))
#define WEBEXEC_NO_THREAD_SAFETY_ANALYSIS WEBEXEC_THREAD_ANNOTATION(no_thread_safety_analysis)
