/*
  mailguard optional rules: Excel 4.0 (XLM) macros in binary .xls (BIFF8).

  Not in the default rule glob (rules/*.yar): BIFF formula tokens are only a
  few bytes long, and searching for them roughly doubles YARA's scan time on
  binary data (measured with yara 4.2.3 on 10 MB of random bytes: 0.08 s
  without, 0.22 s with). Enable it with
      yara { rules = ["./rules/*.yar", "./rules/optional/*.yar"] }
  when that cost is acceptable.
*/

rule Office_XLM_Macro_Exec_BIFF
{
    meta:
        description = "Binary Excel workbook with an Excel 4.0 macro sheet calling EXEC, CALL or REGISTER"
        severity = "high"
        reference = "https://learn.microsoft.com/en-us/openspecs/office_file_formats/ms-xls/"
        author = "mailguard"

    strings:
        // BOUNDSHEET record (0x0085) whose sheet type (dt) is 1: a macro sheet,
        // visible, hidden or very hidden.
        $macrosheet = { 85 00 ?? 00 ?? ?? ?? ?? (00 | 01 | 02) 01 }
        // ptgFuncVar token (0x22/0x42/0x62, argument count, function index):
        // EXEC (0x006E, 1-4 arguments), REGISTER (0x0095) or CALL (0x0096).
        $exec = { (22 | 42 | 62) (01 | 02 | 03 | 04) 6E 00 }
        $call = { (22 | 42 | 62) (01 | 02 | 03 | 04 | 05 | 06 | 07 | 08 | 09 | 0A | 0B | 0C | 0D | 0E | 0F | 10) (95 | 96) 00 }

    condition:
        uint32be(0) == 0xD0CF11E0 and uint32be(4) == 0xA1B11AE1 and
        $macrosheet and ($exec or $call)
}
