/*
  mailguard starter rules: script droppers (HTA, JScript, VBScript) and
  PowerShell.
*/

rule Script_Dropper_Shell_Run
{
    meta:
        description = "HTA/JScript/VBScript that creates WScript.Shell or Shell.Application and runs a command"
        severity = "high"
        reference = "https://attack.mitre.org/techniques/T1059/005/"
        author = "mailguard"

    strings:
        $new_activex = /new\s+ActiveXObject\s*\(/ nocase
        $create      = /CreateObject\s*\(/ nocase
        $wscript     = "WScript.Shell" nocase
        $shell_app   = "Shell.Application" nocase
        $run         = /\.(Run|Exec)\s*[( ]/ nocase
        $shell_exec  = /\.ShellExecute\s*[( ]/ nocase

    condition:
        filesize < 10MB and
        ($new_activex or $create) and
        (($wscript and $run) or ($shell_app and $shell_exec))
}

rule PowerShell_Encoded_Command
{
    meta:
        description = "PowerShell started with -EncodedCommand (or a prefix of it) and a base64 payload"
        severity = "high"
        reference = "https://learn.microsoft.com/en-us/powershell/module/microsoft.powershell.core/about/about_pwsh"
        author = "mailguard"

    strings:
        // PowerShell accepts any prefix of -EncodedCommand, '/' instead of '-',
        // and en/em dashes (UTF-8 E2 80 93/94), which attackers use to dodge filters.
        $enc = /(powershell|pwsh)(\.exe)?["']?\s[^\r\n]{0,200}(-|\/|\xE2\x80\x93|\xE2\x80\x94)e(c|n(c(o(d(e(d(c(o(m(m(a(n(d)?)?)?)?)?)?)?)?)?)?)?)?)?\s+["']?[A-Za-z0-9+\/]{40}/ nocase

    condition:
        filesize < 10MB and $enc
}

rule PowerShell_Download_Cradle
{
    meta:
        description = "PowerShell that downloads code and executes it in memory (IEX cradle, reflective load)"
        severity = "high"
        reference = "https://attack.mitre.org/techniques/T1059/001/"
        author = "mailguard"

    strings:
        $dl_method  = /\.Download(String|Data|File)(Async)?\s*\(/ nocase
        $dl_client  = /Net\.WebClient/ nocase
        $dl_cmdlet  = /\b(Invoke-WebRequest|Invoke-RestMethod|iwr|irm|Start-BitsTransfer)\s/ nocase
        $ex_iex     = /\b(IEX|Invoke-Expression)\b/ nocase
        $ex_load    = /\[(System\.)?Reflection\.Assembly\]::Load/ nocase

    condition:
        filesize < 10MB and
        any of ($dl_*) and any of ($ex_*)
}
