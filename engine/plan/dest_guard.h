// Keeps a download's files inside its destination folder. A manifest's
// paths are checked as text (no "..", not absolute), but the folder on disk
// can still hold a symbolic link, left there by anyone, that leads a path
// such as "sub/file" elsewhere: the writer creates its temporary file
// through the folders of the path, so it would write where the link points.
#pragma once

#include <string>
#include <unordered_map>

#include "ferry/error.h"

namespace ferry {

class DestinationGuard {
 public:
  // `root` is the destination folder, without a trailing '/'. It is
  // resolved on the first Check(), so it may be created after this.
  explicit DestinationGuard(std::string root);

  // Checks the folders that lead from the root to `final_path` (the root,
  // a '/', then a relative path): each that exists must be a folder, and a
  // symbolic link among them must lead to a folder below the root (a link
  // that stays inside is fine). Folders that do not exist yet are fine:
  // the writer creates them as real folders. The last component is not
  // checked, because the writer renames over it, which replaces a link
  // instead of following it.
  //
  // Results are kept per folder, so a manifest of many files in few
  // folders costs a few lstat calls per folder. The check and the write
  // are not atomic: a link made between them is not seen.
  //
  // Not thread-safe: one planner thread calls it.
  [[nodiscard]] Status Check(const std::string& final_path);

 private:
  // Why the folder `dir` (the root or below) cannot hold files; empty when
  // it can. Uses and fills cache_.
  const std::string& CheckFolder(const std::string& dir);
  // The same for one folder whose parent was found fine; sets *missing
  // when it does not exist.
  std::string CheckComponent(const std::string& folder, bool* missing) const;

  std::string root_;
  std::string real_root_;     // realpath of root_, set by the first Check
  std::string root_problem_;  // why the root cannot be resolved; or empty
  bool resolved_ = false;     // whether real_root_ or root_problem_ is set
  // Folders already checked (full paths), to why they cannot hold files
  // or an empty string. Cleared when it grows past kMaxCached entries.
  std::unordered_map<std::string, std::string> cache_;
};

}  // namespace ferry
