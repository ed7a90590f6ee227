#include "disk/range_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <system_error>

#include "disk/disk_writer.h"

namespace ferry {

Status CreateRangeFile(const std::string& final_path, uint64_t size) {
  const std::string part = PartPathFor(final_path);
  const size_t slash = final_path.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    std::error_code ec;
    std::filesystem::create_directories(final_path.substr(0, slash), ec);
    if (ec) {
      return ErrorFromErrno(
          ec.value(), "cannot create directory " + final_path.substr(0, slash));
    }
  }
  // Whatever has the name (left by an interrupted run, or planted, even a
  // link) goes; the file is then created, never opened through a link.
  if (::unlink(part.c_str()) != 0 && errno != ENOENT) {
    return ErrorFromErrno(errno, "cannot replace " + part);
  }
  int fd = ::open(part.c_str(),
                  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
  if (fd < 0) return ErrorFromErrno(errno, "cannot create " + part);
  // Allocated at once, the ranges' blocks do not interleave on disk. A
  // file system without fallocate gets a sparse file of the same size.
  int rc = ::posix_fallocate(fd, 0, static_cast<off_t>(size));
  if (rc != 0 && rc != EOPNOTSUPP && rc != EINVAL) {
    ::close(fd);
    ::unlink(part.c_str());
    return ErrorFromErrno(rc, "cannot allocate " + part);
  }
  if (rc != 0 && ::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    int err = errno;
    ::close(fd);
    ::unlink(part.c_str());
    return ErrorFromErrno(err, "cannot size " + part);
  }
  if (::close(fd) != 0) return ErrorFromErrno(errno, "cannot create " + part);
  return {};
}

Status TrimRangeFile(const std::string& final_path, uint64_t size) {
  const std::string part = PartPathFor(final_path);
  int fd = ::open(part.c_str(), O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return ErrorFromErrno(errno, "cannot open " + part);
  int rc = ::ftruncate(fd, static_cast<off_t>(size));
  int err = errno;
  ::close(fd);
  if (rc != 0) return ErrorFromErrno(err, "cannot cut " + part + " to size");
  return {};
}

Status CommitRangeFile(const std::string& final_path) {
  const std::string part = PartPathFor(final_path);
  if (::rename(part.c_str(), final_path.c_str()) != 0) {
    return ErrorFromErrno(errno, "cannot rename to " + final_path);
  }
  return {};
}

void RemoveRangeFile(const std::string& final_path) {
  ::unlink(PartPathFor(final_path).c_str());
}

}  // namespace ferry
