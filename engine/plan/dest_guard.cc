#include "plan/dest_guard.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

namespace ferry {
namespace {

// Enough folders for any real tree's working set; a manifest of millions
// of folders clears the cache now and then rather than growing it.
constexpr size_t kMaxCached = 1 << 16;

// Whether `path` is `root` or lies below it; both are resolved paths.
bool IsBelow(const std::string& path, const std::string& root) {
  if (root == "/") return true;
  return path.starts_with(root) &&
         (path.size() == root.size() || path[root.size()] == '/');
}

// realpath(3) into a string; empty on failure, with errno set.
std::string RealPath(const std::string& path) {
  std::unique_ptr<char, decltype(&std::free)> real(
      ::realpath(path.c_str(), nullptr), &std::free);
  return real ? std::string(real.get()) : std::string();
}

}  // namespace

DestinationGuard::DestinationGuard(std::string root) : root_(std::move(root)) {}

Status DestinationGuard::Check(const std::string& final_path) {
  if (!resolved_) {
    resolved_ = true;
    real_root_ = RealPath(root_);
    if (real_root_.empty()) {
      root_problem_ =
          fmt::format("cannot resolve the destination folder {}: {}", root_,
                      std::strerror(errno));
    }
  }
  auto refuse = [&final_path](const std::string& why) {
    return Error(ErrorCode::kLocalIo, RetryClass::kPermanent,
                 fmt::format("destination {}: {}", final_path, why));
  };
  if (!root_problem_.empty()) return refuse(root_problem_);
  const bool below = final_path.size() > root_.size() + 1 &&
                     final_path.starts_with(root_) &&
                     final_path[root_.size()] == '/';
  if (!below) return refuse("is not below the destination folder " + root_);
  const std::string& why =
      CheckFolder(final_path.substr(0, final_path.rfind('/')));
  if (!why.empty()) return refuse(why);
  return {};
}

const std::string& DestinationGuard::CheckFolder(const std::string& dir) {
  static const std::string kFine;
  if (dir.size() <= root_.size()) return kFine;  // the root itself
  if (auto it = cache_.find(dir); it != cache_.end()) return it->second;
  if (cache_.size() >= kMaxCached) cache_.clear();

  // Go up to the deepest folder already known (or the root), remembering
  // where each unknown folder's path ends.
  std::vector<size_t> unknown{dir.size()};
  std::string inherited;
  for (;;) {
    size_t end = dir.rfind('/', unknown.back() - 1);
    if (end <= root_.size()) break;
    auto it = cache_.find(dir.substr(0, end));
    if (it != cache_.end()) {
      inherited = it->second;
      break;
    }
    unknown.push_back(end);
  }

  // Then down again, one lstat each, until a folder that does not exist:
  // the writer creates it and everything below it as real folders.
  bool missing = false;
  std::string why = inherited;
  for (auto end = unknown.rbegin(); end != unknown.rend(); ++end) {
    std::string folder = dir.substr(0, *end);
    if (why.empty() && !missing) why = CheckComponent(folder, &missing);
    cache_[folder] = why;
  }
  return cache_[dir];
}

std::string DestinationGuard::CheckComponent(const std::string& folder,
                                             bool* missing) const {
  struct stat st {};
  if (::lstat(folder.c_str(), &st) != 0) {
    if (errno == ENOENT) {
      *missing = true;
      return {};
    }
    return fmt::format("cannot look at {}: {}", folder, std::strerror(errno));
  }
  if (S_ISDIR(st.st_mode)) return {};
  if (!S_ISLNK(st.st_mode)) return fmt::format("{} is not a folder", folder);

  // A link: where it leads, after every link on the way.
  std::string target = RealPath(folder);
  if (target.empty()) {
    return fmt::format("runs through the symlink {}, which leads nowhere ({})",
                       folder, std::strerror(errno));
  }
  if (!IsBelow(target, real_root_)) {
    return fmt::format(
        "runs through a symlink that leaves the destination folder ({} -> {})",
        folder, target);
  }
  if (::stat(target.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return fmt::format("{} is a symlink to {}, not to a folder", folder,
                       target);
  }
  return {};
}

}  // namespace ferry
