/*
  mailguard starter rules: Office macros.

  The VBA rule runs on *decompressed* VBA module source (MS-OVBA), which is
  what the attach package extracts from vbaProject.bin / OLE macro storages;
  compressed source inside an Office file does not show these keywords.
*/

rule Office_VBA_AutoExec_Shell_Or_Download
{
    meta:
        description = "VBA macro that runs on open/close and starts a process, a shell object or a download"
        severity = "high"
        reference = "https://learn.microsoft.com/en-us/office/vba/word/concepts/customizing-word/auto-macros"
        author = "mailguard"

    strings:
        // Every decompressed VBA module starts with its name attribute.
        $vba = "Attribute VB_Name" nocase

        // Entry points Office runs without a click.
        $auto = /Sub\s+(AutoOpen|Auto_Open|AutoExec|AutoNew|AutoClose|Auto_Close|Document_Open|Document_New|Document_Close|Workbook_Open|Workbook_Activate|Workbook_BeforeClose|App_DocumentOpen|App_WorkbookOpen)\s*\(/ nocase

        // What droppers do from there.
        $shell_call   = /\bShell\s*\(/ nocase
        $shell_stmt   = /\bShell\s+["A-Za-z_(]/ nocase
        $wscript      = "WScript.Shell" nocase
        $shell_app    = "Shell.Application" nocase
        $shell_exec   = "ShellExecute" nocase
        $download     = "URLDownloadToFile" nocase
        $create_bad   = /CreateObject\s*\(\s*"(MSXML2\.(Server)?XMLHTTP[.0-9]*|Microsoft\.XMLHTTP|WinHttp\.WinHttpRequest[.0-9]*|ADODB\.Stream|Schedule\.Service)"/ nocase
        $wmi          = /GetObject\s*\(\s*"(winmgmts|new:)/ nocase
        $lolbin       = /\b(powershell|mshta|certutil|bitsadmin|regsvr32|rundll32|wscript|cscript)(\.exe)?\b/ nocase
        $cmd          = /\bcmd(\.exe)?\s+\/[ck]\b/ nocase

    condition:
        filesize < 20MB and $vba and $auto and
        ($shell_call or $shell_stmt or $wscript or $shell_app or $shell_exec or
         $download or $create_bad or $wmi or $lolbin or $cmd)
}

rule Office_XLM_Macro_Exec
{
    meta:
        description = "Excel 4.0 (XLM) macro sheet calling EXEC, CALL or REGISTER: runs programs or Windows API functions"
        severity = "high"
        reference = "https://learn.microsoft.com/en-us/openspecs/office_file_formats/ms-xls/"
        author = "mailguard"

    strings:
        // Binary .xls (BIFF8) stores formulas as tokens; their byte patterns are
        // too short to search fast (they doubled scan time of binary data), so
        // they live in optional/office_biff.yar, outside the default glob.

        // OOXML (xlsm/xlsb unpacked): xl/macrosheets/sheetN.xml holds formulas as text.
        $xml_macrosheet = "<xm:macrosheet" nocase
        $xml_formula    = /<f(\s[^>]{0,100})?>[^<]{0,1000}\b(EXEC|CALL|REGISTER|REGISTER\.ID)\(/ nocase

        // SYLK (.slk): "ID;P" header, formulas in ";E" fields.
        $slk_formula    = /;E([^\r\n]{0,200}\W)?(EXEC|CALL|REGISTER)\(/ nocase

    condition:
        ($xml_macrosheet and $xml_formula) or
        (uint32be(0) == 0x49443B50 and $slk_formula)
}
