/*
  mailguard starter rules: Windows shortcuts (.lnk) and the disk images
  that carry them past mail filters.
*/

rule LNK_Runs_Interpreter_With_Arguments
{
    meta:
        description = "Windows shortcut that starts a script interpreter or system binary (powershell, mshta, cmd, wscript, rundll32, ...) with suspicious arguments"
        severity = "high"
        reference = "https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-shllink/"
        author = "mailguard"

    strings:
        $bin1  = "powershell" ascii wide nocase
        $bin2  = "pwsh.exe" ascii wide nocase
        $bin3  = "mshta" ascii wide nocase
        $bin4  = "cmd.exe" ascii wide nocase
        $bin5  = "wscript" ascii wide nocase
        $bin6  = "cscript" ascii wide nocase
        $bin7  = "rundll32" ascii wide nocase
        $bin8  = "regsvr32" ascii wide nocase
        $bin9  = "certutil" ascii wide nocase
        $bin10 = "bitsadmin" ascii wide nocase
        $bin11 = "msiexec" ascii wide nocase
        $bin12 = "forfiles" ascii wide nocase

        $arg1  = "http:" ascii wide nocase
        $arg2  = "https:" ascii wide nocase
        $arg3  = "javascript:" ascii wide nocase
        $arg4  = "vbscript:" ascii wide nocase
        $arg5  = " -enc" ascii wide nocase
        $arg6  = " -e " ascii wide nocase
        $arg7  = "hidden" ascii wide nocase
        $arg8  = "bypass" ascii wide nocase
        $arg9  = "iex" ascii wide nocase
        $arg10 = "downloadstring" ascii wide nocase
        $arg11 = "frombase64string" ascii wide nocase
        $arg12 = "/c " ascii wide nocase
        $arg13 = "/k " ascii wide nocase
        $arg14 = ".hta" ascii wide nocase
        $arg15 = "\\\\" ascii wide
        $arg16 = "%comspec%" ascii wide nocase
        $arg17 = "start-process" ascii wide nocase
        $arg18 = "/i " ascii wide nocase

    condition:
        // ShellLinkHeader: HeaderSize 0x4C and LinkCLSID 00021401-0000-0000-C000-000000000046.
        uint32(0) == 0x0000004C and uint32(4) == 0x00021401 and
        uint32(12) == 0x000000C0 and uint32(16) == 0x46000000 and
        // LinkFlags HasArguments: the shortcut passes a command line.
        (uint32(20) & 0x20) != 0 and
        filesize < 1MB and
        any of ($bin*) and any of ($arg*)
}

rule Disk_Image_With_LNK
{
    meta:
        description = "ISO 9660/UDF or FAT disk image (.iso/.img) that contains a Windows shortcut"
        severity = "high"
        reference = "https://attack.mitre.org/techniques/T1553/005/"
        author = "mailguard"

    strings:
        $lnk_header   = { 4C 00 00 00 01 14 02 00 00 00 00 00 C0 00 00 00 00 00 00 46 }
        $iso_name     = ".lnk;1" nocase
        // Joliet names are UCS-2 big-endian.
        $joliet_name  = { 00 2E 00 (4C | 6C) 00 (4E | 6E) 00 (4B | 6B) }
        // FAT long file names are UTF-16 little-endian.
        $lfn_name     = ".lnk" wide nocase

    condition:
        (
            // "CD001" (ISO 9660) or "BEA01" (UDF) volume descriptor at 32 KiB + 1.
            (uint32be(0x8001) == 0x43443030 and uint8(0x8005) == 0x31) or
            (uint32be(0x8001) == 0x42454130 and uint8(0x8005) == 0x31) or
            // FAT boot sector: jump, 0x55AA signature, "FAT" type string.
            ((uint8(0) == 0xEB or uint8(0) == 0xE9) and uint16(510) == 0xAA55 and
             (uint32be(0x36) == 0x46415431 or uint32be(0x52) == 0x46415433))
        ) and
        ($lnk_header or $iso_name or $joliet_name or $lfn_name)
}
