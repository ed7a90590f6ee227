// The temporary file of a download that several transfers write at once,
// each its own range (DiskWriter::BeginRange). It is created afresh at its
// full size before the first range starts, and renamed or removed after
// the last one ends. These calls block (creating folders, allocating the
// file, renaming), so the transfer loop runs them on worker threads.
#pragma once

#include <cstdint>
#include <string>

#include "ferry/error.h"

namespace ferry {

// Creates the missing folders and the temporary file of `final_path`,
// replacing whatever had its name, with `size` bytes allocated.
[[nodiscard]] Status CreateRangeFile(const std::string& final_path,
                                     uint64_t size);

// Cuts the temporary file to `size` bytes: writes with O_DIRECT may have
// padded its last block.
[[nodiscard]] Status TrimRangeFile(const std::string& final_path,
                                   uint64_t size);

// Gives the temporary file its final name.
[[nodiscard]] Status CommitRangeFile(const std::string& final_path);

// Removes the temporary file, if it is there.
void RemoveRangeFile(const std::string& final_path);

}  // namespace ferry
