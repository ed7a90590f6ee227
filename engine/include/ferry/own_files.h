// The names of the files ferry keeps beside the files it moves: the hidden
// temporary file of a download in progress (".NAME.ferry-part"), a run's
// journal (".NAME.ferry-journal", ".NAME.ferry-put-journal"), the probe
// that tests a destination (".ferry-probe-PID") and the temporary file of
// a manifest being written (".NAME.ferry-part-" and six random
// characters). A download may not write a file under such a name, and
// `ferry manifest` does not list one.
#pragma once

#include <string_view>

namespace ferry {

// `name` is one path segment.
inline bool IsOwnFileName(std::string_view name) {
  if (name.size() < 2 || name.front() != '.') return false;
  for (std::string_view suffix :
       {".ferry-part", ".ferry-journal", ".ferry-put-journal"}) {
    if (name.ends_with(suffix)) return true;
  }
  return name.starts_with(".ferry-probe-") ||
         name.find(".ferry-part-") != std::string_view::npos;
}

}  // namespace ferry
