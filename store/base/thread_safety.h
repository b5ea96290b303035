// Locks the compiler checks: clang's thread-safety analysis (-Wthread-safety), as LevelDB and
// Abseil use it. A mutex is a capability; GUARDED_BY says which one a member needs, REQUIRES
// what a function expects held, EXCLUDES what it takes itself, ACQUIRED_BEFORE the lock order.
// Under other compilers every annotation is empty.
//
// libstdc++'s std::mutex and std::shared_mutex carry no annotations, so fbfs locks through the
// small wrappers below. Waiting on a condition: std::condition_variable_any with the Mutex itself
// while a LockGuard holds it; a predicate that reads guarded members is a lambda marked
// REQUIRES(the mutex).
#pragma once

#include <mutex>
#include <shared_mutex>

#if defined(__clang__)
#define FBFS_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define FBFS_THREAD_ANNOTATION(x)
#endif

#define CAPABILITY(x) FBFS_THREAD_ANNOTATION(capability(x))
#define SCOPED_CAPABILITY FBFS_THREAD_ANNOTATION(scoped_lockable)
#define GUARDED_BY(x) FBFS_THREAD_ANNOTATION(guarded_by(x))
#define PT_GUARDED_BY(x) FBFS_THREAD_ANNOTATION(pt_guarded_by(x))
#define ACQUIRED_BEFORE(...) FBFS_THREAD_ANNOTATION(acquired_before(__VA_ARGS__))
#define ACQUIRED_AFTER(...) FBFS_THREAD_ANNOTATION(acquired_after(__VA_ARGS__))
#define REQUIRES(...) FBFS_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define REQUIRES_SHARED(...) FBFS_THREAD_ANNOTATION(requires_shared_capability(__VA_ARGS__))
#define ACQUIRE(...) FBFS_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define ACQUIRE_SHARED(...) FBFS_THREAD_ANNOTATION(acquire_shared_capability(__VA_ARGS__))
#define RELEASE(...) FBFS_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define RELEASE_SHARED(...) FBFS_THREAD_ANNOTATION(release_shared_capability(__VA_ARGS__))
#define TRY_ACQUIRE(...) FBFS_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define EXCLUDES(...) FBFS_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define ASSERT_SHARED_CAPABILITY(x) FBFS_THREAD_ANNOTATION(assert_shared_capability(x))
#define RETURN_CAPABILITY(x) FBFS_THREAD_ANNOTATION(lock_returned(x))
#define NO_THREAD_SAFETY_ANALYSIS FBFS_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace fbfs {

// std::mutex, as a capability.
class CAPABILITY("mutex") Mutex {
public:
    void lock() ACQUIRE() { m_mutex.lock(); }
    void unlock() RELEASE() { m_mutex.unlock(); }
    bool try_lock() TRY_ACQUIRE(true) { return m_mutex.try_lock(); }

private:
    std::mutex m_mutex;
};

// std::shared_mutex, as a capability that may be held exclusively or shared.
class CAPABILITY("shared mutex") SharedMutex {
public:
    void lock() ACQUIRE() { m_mutex.lock(); }
    void unlock() RELEASE() { m_mutex.unlock(); }
    void lock_shared() ACQUIRE_SHARED() { m_mutex.lock_shared(); }
    void unlock_shared() RELEASE_SHARED() { m_mutex.unlock_shared(); }
    // Tells the analysis that the caller holds this shared through a lock it cannot follow (a
    // std::shared_lock handed to another scope). Checks nothing at run time.
    void assert_held_shared() const ASSERT_SHARED_CAPABILITY(this) {}

private:
    std::shared_mutex m_mutex;
};

// Holds a Mutex for its scope.
class SCOPED_CAPABILITY LockGuard {
public:
    explicit LockGuard(Mutex& mutex) ACQUIRE(mutex) : m_mutex(mutex) { m_mutex.lock(); }
    ~LockGuard() RELEASE() { m_mutex.unlock(); }
    LockGuard(const LockGuard&) = delete;
    LockGuard& operator=(const LockGuard&) = delete;

private:
    Mutex& m_mutex;
};

// Holds a SharedMutex exclusively for its scope.
class SCOPED_CAPABILITY ExclusiveLock {
public:
    explicit ExclusiveLock(SharedMutex& mutex) ACQUIRE(mutex) : m_mutex(mutex) { m_mutex.lock(); }
    ~ExclusiveLock() RELEASE() { m_mutex.unlock(); }
    ExclusiveLock(const ExclusiveLock&) = delete;
    ExclusiveLock& operator=(const ExclusiveLock&) = delete;

private:
    SharedMutex& m_mutex;
};

// Holds a SharedMutex shared for its scope.
class SCOPED_CAPABILITY SharedLock {
public:
    explicit SharedLock(SharedMutex& mutex) ACQUIRE_SHARED(mutex) : m_mutex(mutex) {
        m_mutex.lock_shared();
    }
    ~SharedLock() RELEASE() { m_mutex.unlock_shared(); }
    SharedLock(const SharedLock&) = delete;
    SharedLock& operator=(const SharedLock&) = delete;

private:
    SharedMutex& m_mutex;
};

}  // namespace fbfs
