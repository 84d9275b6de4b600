/*
  mailguard starter rules: OneNote documents with embedded scripts or
  programs (the 2023 OneNote droppers: a fake "double-click to view"
  button over an embedded .hta/.bat/.vbs/.exe).
*/

rule OneNote_Embedded_Script_Or_Executable
{
    meta:
        description = "OneNote file whose embedded file data (FileDataStoreObject) is a program, shortcut or script"
        severity = "critical"
        reference = "https://learn.microsoft.com/en-us/openspecs/office_file_formats/ms-onestore/"
        author = "mailguard"

    strings:
        // FileDataStoreObject header GUID {BDE316E7-2665-4511-A4C4-8D4D0B7A9EAC};
        // the embedded file's bytes start 36 bytes after it.
        $fdso = { E7 16 E3 BD 65 26 11 45 A4 C4 8D 4D 0B 7A 9E AC }

        $s_hta      = "<hta:application" nocase
        $s_wscript  = "WScript.Shell" nocase
        $s_create   = "CreateObject(" nocase
        $s_activex  = "ActiveXObject" nocase
        $s_ps       = "powershell" nocase
        $s_echo     = "@echo off" nocase
        $s_cmd      = "cmd /c" nocase
        $s_cmdexe   = "cmd.exe" nocase
        $s_mshta    = "mshta" nocase
        $s_script   = "<script" nocase
        $s_start    = "Start-Process" nocase

    condition:
        // OneNote section GUID {7B5C52E4-D88C-4DA7-AEB1-5378D02996D3}.
        uint32be(0) == 0xE4525C7B and uint32be(4) == 0x8CD8A74D and
        for any i in (1 .. #fdso) : (
            uint16(@fdso[i] + 36) == 0x5A4D or               // MZ: Windows executable
            uint32(@fdso[i] + 36) == 0x0000004C or           // Windows shortcut
            for any of ($s_*) : ($ in (@fdso[i] + 36 .. @fdso[i] + 36 + 65536))
        )
}
